"""`transduce translate RUN --input FILE --output FILE`: streamed, in input order, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from transduce import cli, textio
from transduce.inference import Translator
from transduce.registry import discover
from transduce.rundir import RunDir
from transduce.textio import count_lines, read_lines

SOURCES = ["march 3, 2001", "", "12/24/99", "SATURDAY, JULY 4, 1970", "4 jan 2011"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_file_is_translated_line_by_line_in_input_order(trained_run: Path, tmp_path: Path, capsys) -> None:
    source = tmp_path / "in.txt"
    source.write_text("\n".join(SOURCES * 3) + "\n", encoding="utf-8")
    output = tmp_path / "out.txt"
    status, out, err = run_cli(
        capsys, "translate", trained_run, "--input", source, "--output", output, "--batch-size", 2
    )
    assert status == 0, err
    lines = output.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(SOURCES) * 3
    expected = Translator.from_run(RunDir.open(trained_run), discover()).translate(SOURCES)
    assert lines[:-1] == expected * 3
    assert lines[1] == ""  # an empty input line gives an empty output line, keeping the alignment
    assert f"wrote {len(SOURCES) * 3} translations to {output}" in err


def test_without_output_the_translations_go_to_stdout(trained_run: Path, tmp_path: Path, capsys) -> None:
    source = tmp_path / "in.txt"
    source.write_text("march 3, 2001\r\n12/24/99", encoding="utf-8")  # CRLF, no final newline
    status, out, _ = run_cli(capsys, "translate", trained_run, "--input", source)
    assert status == 0
    assert out.splitlines() == Translator.from_run(RunDir.open(trained_run), discover()).translate(
        ["march 3, 2001", "12/24/99"]
    )


def test_invalid_utf8_is_an_error_naming_the_line(trained_run: Path, tmp_path: Path, capsys) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(b"march 3, 2001\nbad \xff byte\n")
    status, _, err = run_cli(capsys, "translate", trained_run, "--input", source, "--output", tmp_path / "out.txt")
    assert status == 2
    assert f"{source}:2: not valid UTF-8" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--input", "missing.txt"), "missing.txt: no such input file"),
        (("some text", "--input", "x.txt"), "give either TEXT or --input FILE, not both"),
        (("--batch-size", "0", "--input", "x.txt"), "--batch-size must be at least 1"),
    ],
)
def test_bad_arguments_are_clear_errors(trained_run: Path, capsys, extra: tuple[str, ...], message: str) -> None:
    status, _, err = run_cli(capsys, "translate", trained_run, *extra)
    assert status == 2
    assert message in err


def test_count_lines_and_read_lines_agree_on_final_newlines_and_bom(tmp_path: Path) -> None:
    for data, lines in [
        (b"", []),
        (b"a\n", ["a"]),
        (b"a\nb", ["a", "b"]),
        (b"\xef\xbb\xbfa\r\n\n", ["a", ""]),
    ]:
        path = tmp_path / "f.txt"
        path.write_bytes(data)
        assert list(read_lines(path)) == lines
        assert count_lines(path) == len(lines)


def test_translate_stream_keeps_the_order_across_chunks_and_reads_lazily(trained_run: Path) -> None:
    translator = Translator.from_run(RunDir.open(trained_run), discover())
    pulled: list[str] = []

    def source() -> object:
        for text in SOURCES * 2:
            pulled.append(text)
            yield text

    stream = translator.translate_stream(source(), batch_size=2, chunk=3)
    first = next(stream)
    assert len(pulled) == 3  # one chunk read, not the whole input
    assert [first, *stream] == translator.translate(SOURCES * 2)


def test_an_output_that_cannot_be_written_is_a_clear_error(trained_run: Path, tmp_path: Path, capsys) -> None:
    source = tmp_path / "in.txt"
    source.write_text("march 3, 2001\n", encoding="utf-8")
    status, _, err = run_cli(capsys, "translate", trained_run, "--input", source, "--output", tmp_path)
    assert status == 2
    assert f"{tmp_path}: cannot write the output file" in err and "Traceback" not in err


# --- interruption: the partial output is whole lines, in input order ------------------------------


def _dates(count: int) -> list[str]:
    import datetime
    import random

    from transduce_builtins.datasets import render

    rng = random.Random(5)
    start = datetime.date(1950, 1, 1).toordinal()
    return [render(datetime.date.fromordinal(start + rng.randrange(36000)), rng) for _ in range(count)]


def _written_beside(output: Path) -> bool:
    """Whether a temporary file translate writes `output` through (.NAME.RANDOM.part) holds something yet."""
    for staged in output.parent.glob(f".{output.name}.*.part"):
        try:
            if staged.stat().st_size:
                return True
        except FileNotFoundError:  # moved into place meanwhile
            pass
    return False


def test_an_interrupted_translation_leaves_whole_lines_in_input_order(trained_run: Path, tmp_path: Path) -> None:
    """A real Ctrl-C (SIGINT) to `transduce translate` in a subprocess, once its first chunk is written."""
    import os
    import signal
    import subprocess
    import sys
    import time

    sources = _dates(40 * cli.TRANSLATE_CHUNK)  # far more than is translated before the signal
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("\n".join(sources) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "transduce", "translate", str(trained_run), "--input", str(source)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the machine is shared: no thread oversubscription
    process = subprocess.Popen([*command, "--output", str(output)], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _written_beside(output):
        time.sleep(0.02)  # wait for the first chunk, written beside out.txt until the translation is complete
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    written = output.read_text(encoding="utf-8")
    lines = written.splitlines()
    assert written.endswith("\n") and 0 < len(lines) < len(sources) and len(lines) % cli.TRANSLATE_CHUNK == 0
    assert f"holds the translations of the first {len(lines):,} input lines" in err and "Traceback" not in err
    translator = Translator.from_run(RunDir.open(trained_run), discover())
    first = slice(0, cli.TRANSLATE_CHUNK)
    assert lines[first] == translator.translate(sources[first])


def test_a_stop_in_the_middle_of_a_chunk_cuts_the_output_back_to_whole_chunks(
    trained_run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while the third chunk is half written: the file keeps the two whole chunks; exit status 143."""
    from transduce.interrupt import SignalStop

    monkeypatch.setattr(cli, "TRANSLATE_CHUNK", 2)
    sources = _dates(9)
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("\n".join(sources) + "\n", encoding="utf-8")
    open_output = textio.open_output

    class TornOnTheThirdWrite:
        def __init__(self, handle) -> None:
            self.handle, self.writes = handle, 0

        def __getattr__(self, name: str):
            return getattr(self.handle, name)

        def write(self, text: str) -> int:
            self.writes += 1
            if self.writes == 3:
                self.handle.write(text[: len(text) // 2])
                self.handle.flush()
                raise SignalStop(15)
            return self.handle.write(text)

    monkeypatch.setattr(textio, "open_output", lambda path: TornOnTheThirdWrite(open_output(path)))
    status, _, err = run_cli(capsys, "translate", trained_run, "--input", source, "--output", output)
    assert status == 143
    assert f"{output} holds the translations of the first 4 input lines" in err
    expected = Translator.from_run(RunDir.open(trained_run), discover()).translate(sources[:4])
    assert output.read_text(encoding="utf-8") == "".join(line + "\n" for line in expected)


def test_the_output_may_be_a_pipe_that_cannot_seek(trained_run: Path, tmp_path: Path, capsys) -> None:
    import os
    import threading

    source, fifo = tmp_path / "in.txt", tmp_path / "out.fifo"
    source.write_text("".join(s + "\n" for s in SOURCES), encoding="utf-8")
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.extend(fifo.read_text(encoding="utf-8").splitlines()))
    reader.start()
    status, _, err = run_cli(capsys, "translate", trained_run, "--input", source, "--output", fifo)
    reader.join(timeout=30)
    assert status == 0, err
    assert received == Translator.from_run(RunDir.open(trained_run), discover()).translate(SOURCES)
