"""`transduce score RUN`: a built-in plugin command scoring pairs, streamed, with translate's file safety."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from transduce_builtins import commands_score

import transduce
from transduce._cli import main as cli

PAIRS = [
    ("april 5, 2001", "2001-04-05"),
    ("september 27, 1994", "1994-09-27"),
    ("27/9/94", "1994-09-27"),
    ("1 jan 2000", "2000-01-01"),
    ("TUESDAY, MARCH 3, 1970", "1970-03-03"),
]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def expected_lines(run: Path, pairs: list[tuple[str, str]]) -> list[str]:
    scored = transduce.load(run, device="cpu").score([s for s, _ in pairs], [t for _, t in pairs])
    return [f"{s.log_prob:.4f}\t{s.per_token:.4f}" for s in scored]


def test_a_tsv_file_gets_one_line_per_pair_and_a_summary(trained_run: Path, tmp_path: Path, capsys) -> None:
    source = write_tsv(tmp_path / "pairs.tsv", PAIRS)
    status, out, err = run_cli(capsys, "score", trained_run, "--input", source, "--threads", "1")
    assert status == 0
    assert out.splitlines() == expected_lines(trained_run, PAIRS)
    scored = transduce.load(trained_run, device="cpu").score([s for s, _ in PAIRS], [t for _, t in PAIRS])
    tokens = sum(s.tokens for s in scored)
    mean = sum(s.log_prob for s in scored) / tokens
    assert f"scored 5 pairs, {tokens} target tokens (</s> included): mean log-probability per token {mean:.4f}" in err
    assert f"perplexity {math.exp(-mean):.4f}" in err


def test_line_aligned_files_score_the_same_in_chunks(trained_run: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(commands_score, "SCORE_CHUNK", 2)
    sources, targets = tmp_path / "src.txt", tmp_path / "tgt.txt"
    sources.write_text("".join(s + "\n" for s, _ in PAIRS), encoding="utf-8")
    targets.write_text("".join(t + "\n" for _, t in PAIRS), encoding="utf-8")
    status, out, _ = run_cli(capsys, "score", trained_run, "--source", sources, "--target", targets)
    assert status == 0 and out.splitlines() == expected_lines(trained_run, PAIRS)


def test_files_of_different_lengths_are_refused_naming_both(trained_run: Path, tmp_path: Path, capsys) -> None:
    sources, targets = tmp_path / "src.txt", tmp_path / "tgt.txt"
    sources.write_text("a\nb\nc\n", encoding="utf-8")
    targets.write_text("a\nb\n", encoding="utf-8")
    status, out, err = run_cli(capsys, "score", trained_run, "--source", sources, "--target", targets)
    assert status == 2 and out == ""
    assert f"--source {sources} has 3 lines but --target {targets} has 2" in err


def test_jsonl_output_to_a_file(trained_run: Path, tmp_path: Path, capsys) -> None:
    source, output = write_tsv(tmp_path / "pairs.tsv", PAIRS[:2] + [("", "2001")]), tmp_path / "scores.jsonl"
    status, out, err = run_cli(capsys, "score", trained_run, "--input", source, "--format", "jsonl", "--output", output)
    assert status == 0 and out == "" and f"wrote 3 scores to {output}" in err
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [r["tokens"] for r in rows] == [11, 11, 5]
    assert rows[2] == {"log_prob": None, "per_token": None, "tokens": 5}
    assert rows[0]["per_token"] == pytest.approx(rows[0]["log_prob"] / 11)
    assert "1 pair(s) had an empty source" in err


def test_the_output_is_never_an_input(trained_run: Path, tmp_path: Path, capsys) -> None:
    source = write_tsv(tmp_path / "pairs.tsv", PAIRS)
    before = source.read_bytes()
    status, _, err = run_cli(capsys, "score", trained_run, "--input", source, "--output", source)
    assert status == 2 and "would destroy the input" in err
    assert source.read_bytes() == before


def test_bad_utf8_fails_naming_the_line_and_leaves_the_output_as_it_was(
    trained_run: Path, tmp_path: Path, capsys
) -> None:
    source, output = tmp_path / "pairs.tsv", tmp_path / "scores.txt"
    source.write_bytes(b"april 5, 2001\t2001-04-05\n\xff\xfe\tx\n")
    output.write_bytes(b"keep me\n")
    status, _, err = run_cli(capsys, "score", trained_run, "--input", source, "--output", output)
    assert status == 2 and f"{source}:2: not valid UTF-8" in err
    assert output.read_bytes() == b"keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.tsv", "scores.txt"]  # no staging file left


def test_a_line_without_a_tab_is_named(trained_run: Path, tmp_path: Path, capsys) -> None:
    source = tmp_path / "pairs.tsv"
    source.write_text("april 5, 2001\t2001-04-05\njust a source\n", encoding="utf-8")
    status, _, err = run_cli(capsys, "score", trained_run, "--input", source)
    assert status == 2 and f"{source}:2: expected SOURCE<TAB>TARGET, found no tab" in err


def test_an_empty_file_scores_nothing(trained_run: Path, tmp_path: Path, capsys) -> None:
    source = tmp_path / "empty.tsv"
    source.write_bytes(b"")
    status, out, err = run_cli(capsys, "score", trained_run, "--input", source)
    assert status == 0 and out == "" and "scored 0 pairs: no target tokens" in err


def test_the_runs_data_format_is_read_as_evaluate_data_reads_it(trained_run: Path, tmp_path: Path, capsys) -> None:
    book = tmp_path / "date.txt"
    book.write_text("".join(f"{s:<29}_{t}\n" for s, t in PAIRS[:3]) + "no underscore here\n", encoding="utf-8")
    status, out, err = run_cli(capsys, "score", trained_run, "--input", book, "--input-format", "run")
    assert status == 0 and out.splitlines() == expected_lines(trained_run, PAIRS[:3])
    assert "skipped" in err and f"{book}:4" in err


def test_a_long_source_is_cut_with_a_note(trained_run: Path, tmp_path: Path, capsys) -> None:
    source = write_tsv(tmp_path / "pairs.tsv", [("1" * 5000, "2001-01-01")])
    status, out, err = run_cli(capsys, "score", trained_run, "--input", source)
    assert status == 0 and len(out.splitlines()) == 1
    assert "1 source(s) were longer than the decoding limit" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "nothing to score: give --input FILE"),
        (["--source", "a.txt"], "give --source FILE and --target FILE together"),
        (["--input", "x", "--source", "a", "--target", "b"], "either --input FILE or --source FILE --target FILE"),
        (["--input", "-", "--input-format", "run"], "--input-format run reads a file by name"),
    ],
)
def test_missing_or_conflicting_inputs_are_clear_errors(trained_run: Path, capsys, argv, message) -> None:
    status, _, err = run_cli(capsys, "score", trained_run, *argv)
    assert status == 2 and message in err


def test_a_bad_search_setting_or_batch_size_is_refused(trained_run: Path, tmp_path: Path, capsys) -> None:
    source = write_tsv(tmp_path / "pairs.tsv", PAIRS)
    status, _, err = run_cli(capsys, "score", trained_run, "--input", source, "--set", "train.precision=fp16")
    assert status == 2 and "train.precision: expected one of 'fp32', 'bf16', 'int8', got 'fp16'" in err
    with pytest.raises(SystemExit):
        cli.main(["score", str(trained_run), "--input", str(source), "--batch-size", "0"])
    assert "expected a whole number of pairs >= 1, got '0'" in capsys.readouterr().err
