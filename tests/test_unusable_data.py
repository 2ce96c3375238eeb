"""A data file with no usable pairs stops training with an error that shows the skipped rows (file:line and
reason, the first few and a count of the rest) and how to fix them, since the run directory (and so its notes)
is not kept after such a failure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from transduce_builtins.corpora import CommaSeparated, TabSeparated

from transduce._cli import main as cli
from transduce._data.corpus import Coverage, SplitSummary
from transduce._training.trainer import _check_not_empty
from transduce.errors import DataError, TransduceError

PAIRS = [(f"word {i}", f"mot {i}") for i in range(12)]
TSV = "".join(f"{source}\t{target}\n" for source, target in PAIRS)
SIZES = {"valid_size": 1, "test_size": 1}


def failed_training(recipe: Path, run: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Train, expect the data error (status 2, no traceback) and return what the CLI printed."""
    assert cli.main(["train", str(recipe), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return " ".join(err.split())  # the console wraps long lines


def test_a_utf16_file_names_its_lines_and_says_to_resave_it_as_utf8(
    tmp_path: Path, make_recipe: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "pairs.tsv"
    data.write_bytes(TSV.encode("utf-16"))
    err = failed_training(make_recipe(data={"name": "tsv", "path": str(data), **SIZES}), tmp_path / "run", capsys)
    assert f"{data}: no usable pairs for split 'train': 13 bad rows were skipped:" in err
    assert f"{data}:1: starts with a UTF-16 byte-order mark" in err
    assert f"{data}:2: has a NUL byte between its characters" in err
    assert f"{data}:6:" not in err and "... and 8 more" in err  # the first five, then a count
    assert "The file looks UTF-16: re-save it as UTF-8." in err


def test_a_column_beyond_the_rows_fields_says_how_many_columns_the_rows_have(
    tmp_path: Path, make_recipe: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "pairs.tsv"
    data.write_text(TSV, encoding="utf-8")
    recipe = make_recipe(data={"name": "tsv", "path": str(data), "source_column": 3, **SIZES})
    err = failed_training(recipe, tmp_path / "run", capsys)
    assert f"{data}:1: expected at least 4 tab-separated columns, got 2" in err
    assert "... and 7 more" in err
    assert (
        "Rows have 2 columns, source_column is 3 (counted from 0): "
        "set data.source_column and data.target_column below 2." in err
    )


def test_a_binary_file_names_a_line_and_says_it_is_not_text(
    tmp_path: Path, make_recipe: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "model.bin"
    data.write_bytes(b"\x89\xff\x00\x01\n" + bytes(range(11, 256)) + b"\n\x00\x00\x9c\n")
    recipe = make_recipe(data={"name": "tsv", "path": str(data), **SIZES})
    err = failed_training(recipe, tmp_path / "run", capsys)
    assert f"{data}: no usable pairs for split 'train': 3 bad rows were skipped:" in err
    assert f"{data}:1: not valid UTF-8 (invalid start byte at byte 0)" in err
    assert "The file is not UTF-8 text (a binary file, or another encoding?): give a UTF-8 text file." in err


def test_a_date_file_without_usable_lines_shows_its_skipped_lines(
    tmp_path: Path, make_recipe: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "date.txt"
    data.write_bytes("september 27, 1994           _1994-09-27\n".encode("utf-16"))
    err = failed_training(make_recipe(data={"path": str(data), **SIZES}), tmp_path / "run", capsys)
    assert f"{data}: 0 pairs are too few" in err
    assert f"{data}:1: starts with a UTF-16 byte-order mark" in err
    assert "The file looks UTF-16: re-save it as UTF-8." in err


def test_an_empty_training_split_shows_the_data_sources_notes() -> None:
    empty = SplitSummary(0, Coverage(), Coverage())
    notes = ["f.txt: skipped 2 bad rows (data.bad_rows=skip)", "  f.txt:3: empty target", "  f.txt:4: empty target"]
    with pytest.raises(TransduceError) as caught:
        _check_not_empty(empty, notes)
    assert str(caught.value) == "the training split is empty; check the data settings\n" + "\n".join(notes)


def test_a_utf16_csv_file_says_its_header_is_unreadable_and_how_to_fix_it(tmp_path: Path) -> None:
    data = tmp_path / "qa.csv"
    data.write_bytes("Q,A\nhi,salut\n".encode("utf-16"))
    source = CommaSeparated(path=str(data), source_column="Q", target_column="A")
    with pytest.raises(DataError) as caught:
        list(source.split("train"))
    assert str(caught.value) == (
        f"{data}:1: the header line is unreadable: starts with a UTF-16 byte-order mark; "
        "the file looks UTF-16: re-save it as UTF-8"
    )


def test_csv_rows_with_too_few_fields_suggest_checking_the_delimiter(tmp_path: Path) -> None:
    data = tmp_path / "qa.csv"
    data.write_text("Q;A\nhi;salut\n".replace(";", ",", 1), encoding="utf-8")
    source = CommaSeparated(path=str(data), source_column="Q", target_column="A")
    with pytest.raises(DataError) as caught:
        list(source.split("train"))
    assert f"{data}:2: expected at least 2 columns, got 1" in str(caught.value)
    assert "Rows have 1 field: check data.delimiter (',') and the quoting." in str(caught.value)


def test_too_few_pairs_for_the_held_out_sizes_also_shows_the_skipped_rows(tmp_path: Path) -> None:
    data = tmp_path / "pairs.tsv"
    data.write_text("a\tb\nc\td\nno tab\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        list(TabSeparated(path=str(data), valid_size=1, test_size=1).split("train"))
    message = str(caught.value)
    assert message.startswith(f"{data}: 2 usable pairs are too few to take valid_size=1 and test_size=1")
    assert f"1 bad row was skipped:\n  {data}:3: expected at least 2 tab-separated columns, got 1\n" in message
