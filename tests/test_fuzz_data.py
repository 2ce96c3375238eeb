"""Fuzzing the data sources (tsv, csv, parallel, dates file) and translate's input reader with hostile files.

Files are assembled from pathological pieces: random bytes, invalid UTF-8,
BOMs, CRLF and lone CR, NUL bytes, one gigantic line, empty files, a header
alone. Reading every split (and `evaluate --data`'s read_file) must give
well-formed examples or a DataError with a message (see test_fuzz_harness).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_harness import CASES, ends_cleanly, fuzz, report_cases

from transduce._data.textio import count_lines, read_lines
from transduce._plugins.registry import discover
from transduce.api import Example
from transduce.errors import DataError

REGISTRY = discover()
SPLITS = ("train", "valid", "test")
GIGANTIC = b"x" * 300_000 + b"\t" + "é".encode() * 100_000

#: Byte pieces a line is made of: plain text, separators, quotes and the pathologies.
PIECES = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8).map(lambda t: t.encode("utf-8")),
    st.sampled_from(
        [
            b"\t",
            b",",
            b";",
            b'"',
            b'""',
            b"\r",
            b"\r\n",
            b"\xef\xbb\xbf",
            b"\x00",
            b"\xff",
            b"\xc3",
            b"\xed\xa0\x80",
            b" ",
            b"Q",
            b"A",
            b"hello",
            b"1994-09-27",
            b"_",
            b"sep 27, 1994    _1994-09-27",
        ]
    ),
    st.binary(max_size=6),
)
HOSTILE_LINE = st.lists(PIECES, max_size=6).map(b"".join)
WORD = st.text(alphabet="abcé ", min_size=1, max_size=6).map(lambda t: t.encode("utf-8"))
#: Well-formed lines of each format, so that most files also hold usable pairs among the bad rows.
GOOD = {
    "tsv": st.tuples(WORD, WORD).map(b"\t".join),
    "csv": st.tuples(WORD, WORD, WORD).map(b",".join),
    "dates": st.dates().map(lambda d: f"{d:%b %d, %Y}    _{d.isoformat()}".encode()),
    "plain": WORD,
}


@st.composite
def files(draw: Any, good: str = "plain", header: bytes = b"") -> bytes:
    """The bytes of a hostile file: maybe a BOM, maybe a header, good and bad lines, maybe one huge line."""
    kind = draw(st.sampled_from(["lines"] * 4 + ["empty", "header only", "gigantic", "random bytes"]))
    if kind == "empty":
        return b""
    if kind == "random bytes":
        return draw(st.binary(max_size=300))
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    lines = [] if kind == "header only" else draw(st.lists(GOOD[good] | GOOD[good] | HOSTILE_LINE, max_size=30))
    if kind == "gigantic":
        lines.insert(draw(st.integers(0, len(lines))), GIGANTIC)
    text = ending.join([*([header] if header else []), *lines])
    return bom + text + draw(st.sampled_from([b"", ending]))


@contextmanager
def directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def read_everything(source: Any, user_file: Path) -> list[list[Example]]:
    """Every split, then the file as `evaluate --data` reads it; checks each example's shape."""
    results = []
    for read in [*(lambda name=name: source.split(name) for name in SPLITS), lambda: source.read_file(user_file)]:
        examples = ends_cleanly("data (reads)", lambda read=read: list(read()), errors=(DataError,))
        CASES["data (reads giving examples)" if isinstance(examples, list) else "data (reads refused)"] += 1
        if isinstance(examples, list):
            for example in examples:
                assert isinstance(example, Example)
                for side in (example.source, example.target):
                    assert isinstance(side, str) and side == side.strip() and side and "\0" not in side
            results.append(examples)
    source.notes()  # the notes about skipped rows render too
    return results


def built(name: str, **params: Any) -> Any:
    return REGISTRY.get("dataset", name).cls(**params)


SPLIT_OPTIONS = st.fixed_dictionaries(
    {
        "valid_size": st.integers(1, 3),
        "test_size": st.integers(1, 3),
        "deduplicate": st.booleans(),
        "bad_rows": st.sampled_from(["skip", "skip", "skip", "error"]),
    }
)


@fuzz(70)
@given(files("tsv"), SPLIT_OPTIONS, st.booleans())
def test_tsv(data: bytes, options: dict[str, Any], header: bool) -> None:
    with directory() as root:
        (root / "train.tsv").write_bytes(data)
        source = built("tsv", path=str(root / "train.tsv"), header=header, **options)
        ends_cleanly("data: tsv", lambda: read_everything(source, root / "train.tsv"), errors=(DataError,))


@fuzz(70)
@given(files("csv", header=b"Q,A,label"), SPLIT_OPTIONS, st.sampled_from([",", ";", "\t"]))
def test_csv(data: bytes, options: dict[str, Any], delimiter: str) -> None:
    with directory() as root:
        (root / "train.csv").write_bytes(data.replace(b",", delimiter.encode()))  # the header's too
        source = built(
            "csv", path=str(root / "train.csv"), source_column="Q", target_column="A", delimiter=delimiter, **options
        )
        ends_cleanly("data: csv", lambda: read_everything(source, root / "train.csv"), errors=(DataError,))


@st.composite
def aligned_files(draw: Any) -> tuple[bytes, bytes]:
    """Two files of (usually) equal line counts; sometimes one has extra lines, or both are hostile wholes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(files()), draw(files())
    count = draw(st.integers(0, 14))
    sides = [draw(st.lists(GOOD["plain"] | GOOD["plain"] | HOSTILE_LINE, min_size=count, max_size=count)) for _ in "st"]
    sides[1] += draw(st.lists(GOOD["plain"], max_size=1))
    return tuple(b"\n".join(lines) + b"\n" for lines in sides)


@fuzz(60)
@given(aligned_files(), SPLIT_OPTIONS, st.booleans())
def test_parallel(data: tuple[bytes, bytes], options: dict[str, Any], own_splits: bool) -> None:
    source_data, target_data = data
    with directory() as root:
        (root / "train.de").write_bytes(source_data)
        (root / "train.en").write_bytes(target_data)
        if own_splits:  # valid and test files of their own: the same hostile pair
            for stem in ("val", "test"):
                (root / f"{stem}.de").write_bytes(source_data)
                (root / f"{stem}.en").write_bytes(target_data)
        stems = {} if own_splits else {"valid": None, "test": None}
        source = built("parallel", path=str(root), source_language="de", target_language="en", **stems, **options)
        ends_cleanly("data: parallel", lambda: read_everything(source, root / "train.de"), errors=(DataError,))


@fuzz(70)
@given(files("dates"), st.sampled_from(["skip", "error"]), st.integers(1, 3))
def test_dates_file(data: bytes, bad_rows: str, held_out: int) -> None:
    with directory() as root:
        (root / "date.txt").write_bytes(data)
        source = built("dates", path=str(root / "date.txt"), valid_size=held_out, test_size=held_out, bad_rows=bad_rows)
        ends_cleanly("data: dates file", lambda: read_everything(source, root / "date.txt"), errors=(DataError,))


@fuzz(60)
@given(files())
def test_translate_input_lines(data: bytes) -> None:
    """`translate --input FILE`'s reader: every line as text, or a DataError naming the bad line."""
    with directory() as root:
        path = root / "in.txt"
        path.write_bytes(data)
        lines = ends_cleanly("data: translate input", lambda: list(read_lines(path)), errors=(DataError,))
        if isinstance(lines, list):
            assert len(lines) == count_lines(path)
            assert all(isinstance(line, str) and "\n" not in line for line in lines)


def test_a_missing_file_and_a_directory_are_data_errors() -> None:
    with directory() as root:
        for read in _readers(root / "missing.tsv") + _readers(root):
            error = ends_cleanly("harness", read, errors=(DataError,))
            assert isinstance(error, DataError) and str(root) in str(error)


def _readers(path: Path) -> list[Callable[[], object]]:
    return [
        lambda: list(built("tsv", path=str(path)).split("train")),
        lambda: list(built("csv", path=str(path), source_column="Q", target_column="A").split("train")),
        lambda: built("dates", path=str(path)).split("train"),
        lambda: list(read_lines(path)),
    ]


def test_cases_ran() -> None:
    print(report_cases("data"))
