"""`transduce translate --output` never destroys a file: not the input, not an existing output (issue 14, item 1)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
from test_translate_files import SOURCES, run_cli

from transduce._cli import main as cli
from transduce._data import textio
from transduce._data.interrupt import SignalStop
from transduce._decoding.translator import Translator
from transduce._plugins.registry import discover
from transduce._runs.rundir import RunDir

INPUT = "".join(line + "\n" for line in SOURCES).encode("utf-8")
#: What an output file held before translate ran: it must never be lost.
OLD = b"yesterday's translations\n"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """in.txt holding INPUT and out.txt holding OLD: a translation's input and an output the user already has."""
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_bytes(INPUT)
    output.write_bytes(OLD)
    return source, output


def fails_with(number: int) -> Callable[..., NoReturn]:
    """A stand-in that fails as the OS does with error `number` (ENOSPC: a full disk; EACCES: no permission)."""

    def fail(*args: object) -> NoReturn:
        raise OSError(number, os.strerror(number))

    return fail


def expected_output(run: Path, sources: list[str] = SOURCES) -> bytes:
    translations = Translator.from_run(RunDir.open(run), discover()).translate(sources)
    return "".join(line + "\n" for line in translations).encode("utf-8")


def staged(folder: Path) -> list[Path]:
    """Temporary files translate left behind in `folder` (there should be none once it has finished)."""
    return sorted(folder.glob(".*.part"))


def _same_path(source: Path) -> Path:
    return source


def _another_path(source: Path) -> Path:
    (source.parent / "sub").mkdir()
    return source.parent / "sub" / ".." / source.name


def _hard_link(source: Path) -> Path:
    os.link(source, source.parent / "hard.txt")
    return source.parent / "hard.txt"


def _symbolic_link(source: Path) -> Path:
    (source.parent / "link.txt").symlink_to(source)
    return source.parent / "link.txt"


def _through_a_missing_folder(source: Path) -> Path:
    return source.parent / "missing" / ".." / source.name  # does not exist as written, resolves to the input


ALIASES = [_same_path, _another_path, _hard_link, _symbolic_link, _through_a_missing_folder]


@pytest.mark.parametrize("alias", ALIASES, ids=lambda f: f.__name__)
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(
    trained_run: Path, tmp_path: Path, capsys, alias: Callable[[Path], Path]
) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(INPUT)
    output = alias(source)
    status, out, err = run_cli(capsys, "translate", trained_run, "--input", source, "--output", output)
    assert status == 2
    assert f"--output {output} is the input file {source}" in err and "name another output file" in err
    assert "Traceback" not in err and out == ""
    assert source.read_bytes() == INPUT
    assert staged(tmp_path) == []


def test_an_output_that_is_the_file_stdin_reads_is_refused(
    trained_run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`transduce translate RUN --output in.txt < in.txt`."""
    source = tmp_path / "in.txt"
    source.write_bytes(INPUT)
    with source.open(encoding="utf-8") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        status, _, err = run_cli(capsys, "translate", trained_run, "--output", source)
    assert status == 2
    assert f"--output {source} is the file stdin reads" in err
    assert source.read_bytes() == INPUT


def test_a_failing_translation_leaves_an_existing_output_as_it_was(
    trained_run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
) -> None:
    """Invalid UTF-8 on the last line, after several chunks were written: the old output is kept, byte for byte."""
    monkeypatch.setattr(cli, "TRANSLATE_CHUNK", 1)
    source, output = files
    source.write_bytes(INPUT + b"bad \xff byte\n")
    status, _, err = run_cli(capsys, "translate", trained_run, "--input", source, "--output", output)
    assert status == 2 and f"{source}:{len(SOURCES) + 1}: not valid UTF-8" in err
    assert output.read_bytes() == OLD
    assert staged(tmp_path) == []


def test_a_failing_translation_creates_no_output(trained_run: Path, tmp_path: Path, capsys) -> None:
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_bytes(b"march 3, 2001\nbad \xff byte\n")
    status, _, _ = run_cli(capsys, "translate", trained_run, "--input", source, "--output", output)
    assert status == 2
    assert not output.exists() and staged(tmp_path) == []


def _stop_on_the_second_chunk(render: Callable[..., str]) -> Callable[..., str]:
    """`render` (cli._plain_chunk), except that a SIGTERM arrives while the second chunk is translated."""
    calls = []

    def render_or_stop(*args: object) -> str:
        calls.append(args)
        if len(calls) == 2:
            raise SignalStop(15)
        return render(*args)

    return render_or_stop


def test_a_stop_keeps_an_existing_output_and_puts_the_whole_chunks_beside_it(
    trained_run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
) -> None:
    """SIGTERM while the second chunk is being translated: out.txt keeps its bytes; out.txt.partial holds
    the first chunk's translations."""
    monkeypatch.setattr(cli, "TRANSLATE_CHUNK", 2)
    monkeypatch.setattr(cli, "_plain_chunk", _stop_on_the_second_chunk(cli._plain_chunk))
    source, output = files
    status, _, err = run_cli(capsys, "translate", trained_run, "--input", source, "--output", output)
    assert status == 143
    partial = tmp_path / "out.txt.partial"
    assert f"{output} is left as it was; {partial} holds the translations of the first 2 input lines" in err
    assert output.read_bytes() == OLD
    assert partial.read_bytes() == expected_output(trained_run, SOURCES[:2])
    assert staged(tmp_path) == []


def test_a_stop_never_replaces_an_earlier_partial_file(
    trained_run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
) -> None:
    """out.txt and out.txt.partial both exist: both keep their bytes; the lines stay in the hidden file."""
    monkeypatch.setattr(cli, "TRANSLATE_CHUNK", 2)
    monkeypatch.setattr(cli, "_plain_chunk", _stop_on_the_second_chunk(cli._plain_chunk))
    (source, output), partial = files, tmp_path / "out.txt.partial"
    partial.write_bytes(b"last week's partial translations\n")
    status, _, err = run_cli(capsys, "translate", trained_run, "--input", source, "--output", output)
    assert status == 143
    (kept,) = staged(tmp_path)
    assert f"{output} is left as it was; {kept} holds the translations of the first 2 input lines" in err
    assert kept.read_bytes() == expected_output(trained_run, SOURCES[:2])
    assert output.read_bytes() == OLD
    assert partial.read_bytes() == b"last week's partial translations\n"


def test_a_stop_whose_lines_cannot_be_kept_says_so_and_leaves_the_output(
    trained_run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
) -> None:
    """A full disk while the whole chunks are saved on a stop: a clear message, the old output intact."""
    monkeypatch.setattr(cli, "TRANSLATE_CHUNK", 2)
    monkeypatch.setattr(cli, "_plain_chunk", _stop_on_the_second_chunk(cli._plain_chunk))
    monkeypatch.setattr(textio.StagedFile, "_sync", fails_with(errno.ENOSPC))
    source, output = files
    status, _, err = run_cli(capsys, "translate", trained_run, "--input", source, "--output", output)
    assert status == 143
    assert f"{output}: the translations of the first 2 input lines could not be kept (No space left" in err
    assert "Traceback" not in err and output.read_bytes() == OLD


def test_an_existing_output_is_replaced_whole_keeping_its_mode(trained_run: Path, tmp_path: Path, capsys) -> None:
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_bytes(INPUT)
    output.write_bytes(b"old\n" * 1000)
    output.chmod(0o640)
    status, _, err = run_cli(capsys, "translate", trained_run, "--input", source, "--output", output)
    assert status == 0, err
    assert output.read_bytes() == expected_output(trained_run)
    assert stat.S_IMODE(output.stat().st_mode) == 0o640
    assert staged(tmp_path) == []


def test_a_new_output_gets_the_mode_the_umask_gives(trained_run: Path, tmp_path: Path, capsys) -> None:
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_bytes(INPUT)
    umask = os.umask(0o027)
    try:
        status, _, _ = run_cli(capsys, "translate", trained_run, "--input", source, "--output", output)
    finally:
        os.umask(umask)
    assert status == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o640


def test_an_output_through_a_symbolic_link_writes_the_file_it_points_to(
    trained_run: Path, tmp_path: Path, capsys
) -> None:
    source, real, link = tmp_path / "in.txt", tmp_path / "real.txt", tmp_path / "link.txt"
    source.write_bytes(INPUT)
    real.write_bytes(b"old\n")
    link.symlink_to(real)
    status, _, _ = run_cli(capsys, "translate", trained_run, "--input", source, "--output", link)
    assert status == 0
    assert link.is_symlink() and real.read_bytes() == expected_output(trained_run)


def test_output_dash_is_stdout_and_input_dash_is_stdin(
    trained_run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(INPUT)
    monkeypatch.chdir(tmp_path)
    with source.open(encoding="utf-8") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        status, out, _ = run_cli(capsys, "translate", trained_run, "--input", "-", "--output", "-")
    assert status == 0
    assert out.encode("utf-8") == expected_output(trained_run)
    assert not (tmp_path / "-").exists()


def test_a_full_device_is_a_clear_error(trained_run: Path, tmp_path: Path, capsys) -> None:
    """A character device is written in place (it cannot be replaced); /dev/full fails every write."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    source = tmp_path / "in.txt"
    source.write_bytes(INPUT)
    status, _, err = run_cli(capsys, "translate", trained_run, "--input", source, "--output", "/dev/full")
    assert status == 2
    assert "/dev/full: cannot write the translations (No space left on device)" in err and "Traceback" not in err


def test_an_output_in_a_folder_that_cannot_be_written_says_why(
    trained_run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
) -> None:
    """The output is written beside its place first, so its folder must be writable; the error says so.
    (The folder's refusal is simulated: the tests may run as root, whom a read-only folder does not stop.)"""
    monkeypatch.setattr(textio, "_create_beside", fails_with(errno.EACCES))
    source, output = files
    status, _, err = run_cli(capsys, "translate", trained_run, "--input", source, "--output", output)
    assert status == 2
    assert f"{output}: cannot write the output file (Permission denied)" in err
    assert f"it is written as a temporary file in {tmp_path} first" in err and "Traceback" not in err
    assert output.read_bytes() == OLD


@pytest.mark.parametrize("format_", ["plain", "nbest"])
def test_a_text_with_an_output_file_is_written_there_not_to_stdout(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], format_: str
) -> None:
    output = tmp_path / "one.txt"
    code = cli.main(["translate", str(trained_run), SOURCES[0], "--output", str(output), "--format", format_])
    assert code == 0
    assert capsys.readouterr().out == ""
    written = output.read_text(encoding="utf-8")
    best = expected_output(trained_run, SOURCES[:1]).decode("utf-8")
    if format_ == "plain":
        assert written == best
    else:
        line, rank, _score, text = written.splitlines()[0].split("\t")
        assert (line, rank, text + "\n") == ("1", "1", best)
    assert staged(tmp_path) == []
