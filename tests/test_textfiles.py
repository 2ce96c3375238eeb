"""Tests of the reading machinery shared by the file-based data sources (transduce_builtins.textfiles)."""

from __future__ import annotations

import random

import pytest
from transduce_builtins.textfiles import NOT_TEXT_FIX, UTF16_FIX, ReadLog, decode_line, group_key, plan_split

from transduce.api import DataError


def reference_plan(sources: list[str], seed: int, valid_size: int, test_size: int) -> dict[str, set[str]]:
    """The split plan_split promises, computed with every group in memory."""
    counts: dict[str, int] = {}
    for source in sources:
        counts[source] = counts.get(source, 0) + 1
    owners: dict[str, set[str]] = {"valid": set(), "test": set(), "train": set()}
    filled = {"valid": 0, "test": 0}
    for source in sorted(counts, key=lambda s: group_key(s, seed)):
        name = "valid" if filled["valid"] < valid_size else "test" if filled["test"] < test_size else "train"
        owners[name].add(source)
        if name != "train":
            filled[name] += counts[source]
    return owners


@pytest.mark.parametrize("trial", range(30))
def test_streamed_plan_equals_the_in_memory_reference(trial: int) -> None:
    rng = random.Random(trial)
    groups = rng.randint(5, 300)
    sizes = [rng.choice([1, 1, 1, 2, 3, rng.randint(1, 40)]) for _ in range(groups)]
    sources = [f"s{g}" for g, size in enumerate(sizes) for _ in range(size)]
    rng.shuffle(sources)
    valid_size, test_size = rng.randint(0, len(sources) // 3), rng.randint(1, len(sources) // 3 + 1)
    plan = plan_split(iter(sources), trial, valid_size, test_size)
    got: dict[str, set[str]] = {"valid": set(), "test": set(), "train": set()}
    for source in sources:
        got[plan.assign(source)].add(source)
    assert got == reference_plan(sources, trial, valid_size, test_size)
    assert sum(plan.sizes.values()) == len(sources)
    assert plan.sizes["valid"] >= min(valid_size, len(sources))


def test_group_key_ignores_surrounding_whitespace_and_depends_on_the_seed() -> None:
    assert group_key("  Go. \t", 1) == group_key("Go.", 1) != group_key("Go.", 2)


@pytest.mark.parametrize(
    ("number", "raw", "text", "problem"),
    [
        (1, b"\xef\xbb\xbfGo.\r\n", "Go.", None),
        (2, b"\xef\xbb\xbfGo.\n", "\ufeffGo.", None),  # a BOM is only a BOM at the start of a file
        (3, b"a\rb\r\n", "a\rb", None),
        (4, b"last", "last", None),
        (5, b"caf\xe9\n", "caf\ufffd", "not valid UTF-8 (unexpected end of data at byte 3)"),
        (6, b"a\x00b\n", "ab", "contains a NUL byte"),
    ],
)
def test_decode_line(number: int, raw: bytes, text: str, problem: str | None) -> None:
    assert tuple(decode_line(number, raw))[:3] == (number, text, problem)


@pytest.mark.parametrize(
    ("number", "raw", "problem", "fix"),
    [
        (1, "Go.\tVa !\n".encode("utf-16"), "starts with a UTF-16 byte-order mark", UTF16_FIX),
        (7, "Go.\tVa !".encode("utf-16-le")[1:], "has a NUL byte between its characters", UTF16_FIX),
        (8, b"\x00", "has a NUL byte between its characters", UTF16_FIX),  # the end of a UTF-16 line break
        (1, b"PK\x03\x04\x14\x00", "starts like a zip archive", "the file is a zip archive: set data.member"),
        (1, b"\x1f\x8b\x08\x00", "starts like a gzip file", "the file is gzip-compressed: decompress it"),
        (2, b"\x89PNG\r\n", "not valid UTF-8 (invalid start byte at byte 0)", NOT_TEXT_FIX),
        (3, b"a\x00b", "contains a NUL byte", NOT_TEXT_FIX),
    ],
)
def test_a_line_that_is_not_utf8_text_says_what_it_looks_like_and_how_to_fix_it(
    number: int, raw: bytes, problem: str, fix: str
) -> None:
    line = decode_line(number, raw)
    assert line.problem == problem
    assert line.fix is not None and line.fix.startswith(fix)


def test_read_log_keeps_the_furthest_pass_so_rereading_does_not_double_count() -> None:
    log = ReadLog("skip")
    for _ in range(3):
        tally = log.tally("f.txt")
        tally.bad_row("f.txt:2", "empty target")
        tally.bad_row("f.txt:9", "empty source")
    partial = log.tally("f.txt")
    partial.bad_row("f.txt:2", "empty target")
    assert log.notes() == [
        "f.txt: skipped 2 bad rows (data.bad_rows=skip)",
        "  f.txt:2: empty target",
        "  f.txt:9: empty source",
    ]
    assert log.bad_rows("f.txt") == 2 and log.bad_rows("other") == 0


def test_read_log_policy_error_raises_at_the_first_bad_row() -> None:
    with pytest.raises(DataError, match=r"^f\.txt:3: empty target; .*--set data\.bad_rows=skip$"):
        ReadLog("error").tally("f.txt").bad_row("f.txt:3", "empty target")
    with pytest.raises(ValueError, match="skip, error"):
        ReadLog("ignore")
