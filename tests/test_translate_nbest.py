"""`transduce translate --format nbest`: every candidate of every input line, for files and stdin (issue 14,
item 15)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_translate_files import run_cli

from transduce._cli import main as cli

BEAM = ("--set", "search.name=beam", "--set", "search.size=4", "--set", "search.n_best=3")
SOURCES = ["march 3, 2001", "12/24/99", "SATURDAY, JULY 4, 1970", "4 jan 2011", "sept 6 63"]


def rows(text: str) -> list[tuple[int, int, float, str]]:
    """LINE, RANK, SCORE, TEXT of each row (TEXT is last: it may hold tabs)."""
    parsed = []
    for row in text.splitlines():
        line, rank, score, output = row.split("\t", 3)
        parsed.append((int(line), int(rank), float(score), output))
    return parsed


def plain(run: Path, capsys, source: Path, *extra: str) -> list[str]:
    status, out, err = run_cli(capsys, "translate", run, "--input", source, *extra)
    assert status == 0, err
    return out.splitlines()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("".join(s + "\n" for s in SOURCES), encoding="utf-8")
    return path


def test_an_nbest_file_has_n_best_rows_per_input_sorted_by_score(
    trained_run: Path, tmp_path: Path, capsys, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "TRANSLATE_CHUNK", 2)  # line numbers go on across chunks
    output = tmp_path / "out.tsv"
    status, _, err = run_cli(
        capsys, "translate", trained_run, "--input", source, "--output", output, "--format", "nbest", *BEAM
    )
    assert status == 0, err
    found = rows(output.read_text(encoding="utf-8"))
    assert len(found) == len(SOURCES) * 3
    assert [(line, rank) for line, rank, _, _ in found] == [(i, r) for i in range(1, 6) for r in (1, 2, 3)]
    for line in range(1, len(SOURCES) + 1):
        scores = [score for number, _, score, _ in found if number == line]
        assert scores == sorted(scores, reverse=True) and all(score < 0 for score in scores)
    best = [output for _, rank, _, output in found if rank == 1]
    assert best == plain(trained_run, capsys, source, *BEAM)
    assert f"wrote {len(SOURCES)} translations to {output}" in err


def test_nbest_rows_for_stdin_and_for_one_text(
    trained_run: Path, capsys, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with source.open(encoding="utf-8") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        status, out, _ = run_cli(capsys, "translate", trained_run, "--format", "nbest", *BEAM)
    assert status == 0
    from_stdin = rows(out)
    assert len(from_stdin) == len(SOURCES) * 3
    status, out, _ = run_cli(capsys, "translate", trained_run, SOURCES[3], "--format", "nbest", *BEAM)
    assert status == 0
    assert rows(out) == [(1, rank, score, text) for line, rank, score, text in from_stdin if line == 4]


def test_a_strategy_without_nbest_gives_one_row_per_line_and_an_empty_line_one_empty_row(
    trained_run: Path, tmp_path: Path, capsys
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("march 3, 2001\n\n12/24/99\n", encoding="utf-8")
    status, out, _ = run_cli(capsys, "translate", trained_run, "--input", source, "--format", "nbest")
    assert status == 0
    found = rows(out)
    assert [(line, rank) for line, rank, _, _ in found] == [(1, 1), (2, 1), (3, 1)]
    assert found[1][2] != found[1][2] and found[1][3] == ""  # nan: nothing was decoded
    assert [text for _, _, _, text in found] == plain(trained_run, capsys, source)


def test_the_plain_format_stays_the_default(trained_run: Path, capsys, source: Path) -> None:
    assert plain(trained_run, capsys, source, *BEAM) == plain(trained_run, capsys, source, *BEAM, "--format", "plain")
    assert len(plain(trained_run, capsys, source, *BEAM)) == len(SOURCES)


def test_an_unknown_format_is_a_clear_error(trained_run: Path, capsys, source: Path) -> None:
    with pytest.raises(SystemExit):
        cli.main(["translate", str(trained_run), "--input", str(source), "--format", "moses"])
    assert "argument --format: invalid choice: 'moses' (choose from 'plain', 'nbest')" in capsys.readouterr().err
