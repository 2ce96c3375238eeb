"""Tests of the `dates` data source: generation, the book's file format and splitting."""

from __future__ import annotations

import datetime
import re
from collections import Counter
from pathlib import Path

import pytest
from transduce_builtins.datasets import Dates, read_date_file, transduce_components, write_date_file

from transduce.api import SPLITS, DataError, Example

BOOK_FILE = Path("/work/shared/data/date/date.txt")
MONTHS = "january february march april may june july august september october november december".split()
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()


def small(**params: object) -> Dates:
    """A generated source small enough to keep the tests fast."""
    return Dates(**{"train_size": 3000, "valid_size": 300, "test_size": 300, **params})


def all_splits(source: Dates) -> dict[str, list[Example]]:
    return {name: source.split(name) for name in SPLITS}


# --- an independent reader of a few formats ----------------------------------------


def _month(word: str) -> int:
    return next(i for i, name in enumerate(MONTHS, 1) if name.startswith(word))


def _year(text: str) -> int:
    year = int(text)
    return year if len(text) == 4 else (1900 + year if year >= 50 else 2000 + year)


PARSERS = {
    "m/d/yy": (r"(\d{1,2})/(\d{1,2})/(\d{2})", lambda m: (_year(m[3]), int(m[1]), int(m[2]))),
    "m/d/yyyy": (r"(\d{1,2})/(\d{1,2})/(\d{4})", lambda m: (int(m[3]), int(m[1]), int(m[2]))),
    "dd.mm.yyyy": (r"(\d{2})\.(\d{2})\.(\d{4})", lambda m: (int(m[3]), int(m[2]), int(m[1]))),
    "month d, yyyy": (r"([a-z]+) (\d{1,2}), (\d{4})", lambda m: (int(m[3]), _month(m[1]), int(m[2]))),
    "d month yyyy": (r"(\d{1,2}) ([a-z]+) (\d{4})", lambda m: (int(m[3]), _month(m[2]), int(m[1]))),
    "dth of month, yyyy": (
        r"(\d{1,2})(?:st|nd|rd|th) of ([a-z]+), (\d{4})",
        lambda m: (int(m[3]), _month(m[2]), int(m[1])),
    ),
    "weekday, month d, yyyy": (
        r"([a-z]+), ([a-z]+) (\d{1,2}), (\d{4})",
        lambda m: (int(m[4]), _month(m[2]), int(m[3]), m[1]),
    ),
}


def parse(source: str) -> tuple[str, datetime.date] | None:
    """(format name, date) when the source is in one of PARSERS' formats; checks weekdays too."""
    for name, (pattern, fields) in PARSERS.items():
        match = re.fullmatch(pattern, source.lower())
        if match:
            year, month, day, *weekday = fields(match)
            date = datetime.date(year, month, day)
            if weekday:
                assert WEEKDAYS[date.weekday()].startswith(weekday[0]), source
            return name, date
    return None


def shape(source: str) -> str:
    """A source with digits and words abstracted, so each format has one shape."""
    text = re.sub(r"\d+", "9", source.lower())
    return re.sub(r"[a-z]+", lambda m: "of" if m[0] == "of" else "w", text)


# --- generated mode --------------------------------------------------------------


def test_generation_is_deterministic_for_a_seed_and_differs_for_another() -> None:
    first, again, other = all_splits(small()), all_splits(small()), all_splits(small(seed=99))
    assert first == again
    for name in SPLITS:
        assert first[name] != other[name]


def test_generated_split_sizes_follow_the_params_and_default_to_20000_train() -> None:
    assert {name: len(rows) for name, rows in all_splits(small()).items()} == {
        "train": 3000,
        "valid": 300,
        "test": 300,
    }
    assert len(Dates(valid_size=5, test_size=5).split("train")) == 20_000


def test_generated_targets_equal_the_date_written_in_the_source() -> None:
    checked: Counter[str] = Counter()
    for source, target in small().split("train"):
        date = datetime.date.fromisoformat(target)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target)
        assert datetime.date(1950, 1, 1) <= date <= datetime.date(2049, 12, 31)
        parsed = parse(source)
        if parsed:
            name, written = parsed
            assert written == date, (source, target)
            checked[name] += 1
    assert set(checked) == set(PARSERS), checked


def test_generated_sources_use_many_formats_and_cases_and_stay_short() -> None:
    sources = [e.source for e in small().split("train")]
    assert len({shape(s) for s in sources}) >= 8
    assert any(s.islower() for s in sources) and any(s.isupper() for s in sources)
    assert any(s[0].isupper() and not s.isupper() for s in sources)
    assert max(len(s) for s in sources) <= 30
    assert not any(re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", s) for s in sources)


def test_generated_valid_and_test_dates_never_occur_in_train() -> None:
    splits = all_splits(small())
    valid, test = ({e.target for e in splits[n]} for n in ("valid", "test"))
    assert len(valid) == 300 and len(test) == 300 and not valid & test
    assert not (valid | test) & {e.target for e in splits["train"]}


def test_splits_are_built_once_and_cached() -> None:
    source = small()
    assert source.split("train") is source.split("train")


def test_unknown_split_name_names_the_valid_splits() -> None:
    with pytest.raises(DataError, match="'dev'.*train, valid, test"):
        small().split("dev")


def test_held_out_sizes_beyond_the_calendar_are_a_data_error() -> None:
    with pytest.raises(DataError, match="no date for training"):
        Dates(valid_size=20_000, test_size=20_000).split("train")


# --- the book's file ---------------------------------------------------------------


@pytest.mark.skipif(not BOOK_FILE.exists(), reason="the book's date.txt is not present")
def test_book_file_reads_47500_pairs_and_splits_without_shared_targets() -> None:
    pairs = Dates().read_file(BOOK_FILE)
    assert len(pairs) == 47_500
    assert pairs[0] == Example("september 27, 1994", "1994-09-27")
    assert Example("TUESDAY, SEPTEMBER 25, 1984", "1984-09-25") in pairs[:5]
    splits = all_splits(Dates(path=str(BOOK_FILE)))
    assert sum(len(rows) for rows in splits.values()) == 47_500
    targets = {name: {e.target for e in rows} for name, rows in splits.items()}
    assert not targets["train"] & targets["valid"] and not targets["train"] & targets["test"]


def duplicated_file(tmp_path: Path, dates: int = 200) -> Path:
    """A file where date number i appears 1 + i % 4 times, in interleaved order."""
    first = datetime.date(1990, 1, 1)
    rows = [
        Example(f"day {i} copy {copy}", (first + datetime.timedelta(days=i)).isoformat())
        for copy in range(4)
        for i in range(dates)
        if copy <= i % 4
    ]
    path = tmp_path / "dup.txt"
    write_date_file(path, rows)
    return path


def test_file_split_keeps_every_target_date_in_one_split(tmp_path: Path) -> None:
    path = duplicated_file(tmp_path)
    splits = all_splits(Dates(path=str(path), valid_size=50, test_size=50))
    owners: dict[str, set[str]] = {}
    for name, rows in splits.items():
        for example in rows:
            owners.setdefault(example.target, set()).add(name)
    assert all(len(names) == 1 for names in owners.values())
    assert 50 <= len(splits["valid"]) < 54 and 50 <= len(splits["test"]) < 54
    assert sum(len(rows) for rows in splits.values()) == len(read_date_file(path))
    assert splits == all_splits(Dates(path=str(path), valid_size=50, test_size=50))
    assert splits["valid"] != Dates(path=str(path), valid_size=50, test_size=50, seed=7).split("valid")


def test_file_split_caps_train_at_train_size(tmp_path: Path) -> None:
    source = Dates(path=str(duplicated_file(tmp_path)), valid_size=20, test_size=20, train_size=100)
    assert len(source.split("train")) == 100


def test_file_with_too_few_pairs_is_a_data_error(tmp_path: Path) -> None:
    path = duplicated_file(tmp_path, dates=10)
    with pytest.raises(DataError, match="too few"):
        Dates(path=str(path), valid_size=20, test_size=20).split("train")


@pytest.mark.parametrize(
    "line",
    [
        "september 27, 1994            1994-09-27",  # no separator
        "                             _1994-09-27",  # empty source
        "september 27, 1994           _27/09/1994",  # target not ISO
        "abc",
        "february 30, 1994            _1994-02-30",  # not a calendar date
    ],
)
def test_malformed_line_names_file_line_and_expected_form(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(f"june 1, 2001                 _2001-06-01\n\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.txt:3: expected '<source>_<YYYY-MM-DD>', got "):
        read_date_file(path)


def test_non_utf8_bytes_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes(b"june 1, 2001_2001-06-01\n1 juin \xe9t\xe9 2001_2001-06-01\n")
    with pytest.raises(DataError, match=r"latin\.txt:2: not valid UTF-8"):
        read_date_file(path)


def test_missing_file_names_path_and_suggests_data_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(DataError, match=r"nowhere\.txt.*--set data\.path=FILE"):
        Dates(path=str(missing)).split("train")


def test_file_mode_skips_bad_lines_by_default_and_notes_them(tmp_path: Path) -> None:
    path = duplicated_file(tmp_path)
    good = read_date_file(path)
    with path.open("ab") as out:
        out.write(b"not a date line\n\xff\xfe_2001-01-01\n")
    source = Dates(path=str(path), valid_size=20, test_size=20)
    assert sum(len(rows) for rows in all_splits(source).values()) == len(good)
    notes = source.notes()
    assert notes[0] == f"{path}: skipped 2 bad rows (data.bad_rows=skip)"
    assert f"{path}:{len(good) + 1}: expected '<source>_<YYYY-MM-DD>', got 'not a date line'" in notes[1]
    assert notes[2].startswith(f"  {path}:{len(good) + 2}: not valid UTF-8")
    assert Dates().notes() == []


def test_file_mode_with_bad_rows_error_stops_at_the_first_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "dates.txt"
    path.write_text("june 1, 2001_2001-06-01\njune 2, 2001_2001-06-32\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"dates\.txt:2: .*not a calendar date.*--set data\.bad_rows=skip"):
        Dates(path=str(path), bad_rows="error").split("train")


def test_crlf_padding_and_blank_lines_are_handled(tmp_path: Path) -> None:
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"september 27, 1994           _1994-09-27\r\n\r\n9/27/94_1994-09-27\r\n")
    assert read_date_file(path) == [
        Example("september 27, 1994", "1994-09-27"),
        Example("9/27/94", "1994-09-27"),
    ]


def test_written_generated_pairs_read_back_unchanged(tmp_path: Path) -> None:
    pairs = small().split("valid") + [Example("a source longer than twenty-nine chars", "2001-01-01")]
    path = tmp_path / "out.txt"
    write_date_file(path, pairs)
    assert Dates().read_file(path) == pairs
    lines = path.read_text(encoding="utf-8").splitlines()
    assert {line.index("_") for line in lines} == {len(pairs[-1].source)}


def test_write_refuses_a_source_that_would_not_read_back(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot write"):
        write_date_file(tmp_path / "x.txt", [Example("snake_case", "2001-01-01")])


def test_hook_registers_dates_with_documented_params() -> None:
    assert transduce_components() == [Dates]
    assert Dates.name == "dates" and Dates.description().startswith("Date-format conversion")
    assert [p.name for p in Dates.params] == ["path", "seed", "train_size", "valid_size", "test_size", "bad_rows"]
    assert all(p.help for p in Dates.params)
