"""Built-in data sources for real corpora: tab-separated pairs, CSV with named columns, line-aligned files.

All three stream their files (the core iterates the training split several
times, re-reading it each time) and share one behaviour, from textfiles.py:

- a split without its own file is taken from the training file by a seeded
  hash of the source sentence, so every pair of one source sentence lands in
  the same split; held-out sizes are therefore approximate (whole groups,
  at most one group over the asked size);
- `deduplicate` drops exact repeated pairs within each split;
- `bad_rows` skips (and reports in notes(), with file:line) or refuses rows
  with a missing field, an empty side, undecodable bytes or a NUL byte;
  blank lines of tsv and csv files are not rows and are passed over.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any

from transduce_builtins.textfiles import (
    BAD_ROW_POLICIES,
    Line,
    ReadLog,
    SplitPlan,
    checked_pair,
    deduplicated,
    display_name,
    fetch,
    plan_split,
    read_lines,
    require_some,
    verify_sha256,
)

from transduce.api import REQUIRED, SPLITS, DataError, DataSource, Example, Param, hookimpl

# --- what every corpus shares ------------------------------------------------------

_SPLIT_PARAMS = (
    Param("seed", int, 1234, "seed of the split taken from the training file"),
    Param(
        "valid_size",
        int,
        1000,
        "validation pairs taken from the training file when valid has no file of its own "
        "(whole source-sentence groups, so about); 0: no validation, the last epoch's model is kept as the best",
        min=0,
    ),
    Param(
        "test_size",
        int,
        1000,
        "test pairs taken from the training file when test has no file of its own (whole groups, so about); "
        "0: no test split (score another with evaluate.split)",
        min=0,
    ),
    Param("deduplicate", bool, True, "drop exact repeated pairs within each split (reported in the notes)"),
    Param(
        "bad_rows",
        str,
        "skip",
        "a malformed row (missing field, empty side, bad bytes): skip it and report it, or stop with an error",
        choices=BAD_ROW_POLICIES,
    ),
)


class _Corpus(DataSource):
    """The split logic of every corpus; a subclass says which file holds what and how to read it."""

    def __init__(
        self,
        *,
        seed: int = 1234,
        valid_size: int = 1000,
        test_size: int = 1000,
        deduplicate: bool = True,
        bad_rows: str = "skip",
    ) -> None:
        self.seed = seed
        self.valid_size = valid_size
        self.test_size = test_size
        self.deduplicate = deduplicate
        self.log = ReadLog(bad_rows)
        self._plan: SplitPlan | None = None

    # A subclass provides these three. A "file" is whatever `_pairs` accepts.
    def _file(self, name: str) -> Any | None:
        """The file of split `name`; None for valid or test means: take it from the training file."""
        raise NotImplementedError

    def _pairs(self, file: Any) -> Iterator[Example]:
        """Every good pair of `file`, streamed; bad rows go to the log."""
        raise NotImplementedError

    def _name(self, file: Any) -> str:
        """How messages and notes name `file`."""
        raise NotImplementedError

    def notes(self) -> list[str]:
        """Bad rows skipped (first few with file:line, and a count), repeated pairs removed, downloads."""
        return self.log.notes()

    def split(self, name: str) -> Iterator[Example]:
        """The pairs of one split, streamed from its file anew on every call.

        When valid or test is taken from the training file, the first call
        plans the split in one extra pass; only the plan's cut points are kept.
        """
        if name not in SPLITS:
            raise DataError(f"data: unknown split {name!r} (valid splits: {', '.join(SPLITS)})")
        own = self._file(name)
        if own is None and not self._held_out(name):
            return iter(())  # a size of 0: no such split
        file = own if own is not None else self._file("train")
        examples = self._pairs(file)
        held_out = {n: self._held_out(n) for n in ("valid", "test")}
        if (name == "train" or own is None) and any(held_out.values()):
            plan = self._planned(file, held_out)
            examples = (example for example in examples if plan.assign(example.source) == name)
        if self.deduplicate:
            examples = deduplicated(examples, self.log.tally(f"{self._name(file)} (split {name!r})"))
        return require_some(examples, lambda: self._empty_message(file, f"split {name!r}"))

    def _held_out(self, name: str) -> bool:
        """Whether split `name` is taken from the training file: it has no file of its own and a size above 0."""
        size = {"valid": self.valid_size, "test": self.test_size}.get(name, 0)
        return size > 0 and self._file(name) is None

    def read_file(self, path: Path) -> Iterator[Example]:
        """Every good pair of a file in this source's format, unsplit and not de-duplicated."""
        file = self._user_file(Path(path))
        return require_some(self._pairs(file), lambda: self._empty_message(file, "this file"))

    def _user_file(self, path: Path) -> Any:
        """The `_pairs` argument for a path given by the user (evaluate --data)."""
        return path

    def _planned(self, file: Any, held_out: dict[str, bool]) -> SplitPlan:
        """The split of the training file, planned in one streamed pass the first time it is needed."""
        if self._plan is None:
            sizes = {"valid": self.valid_size, "test": self.test_size}
            sizes = {n: size if held_out[n] else 0 for n, size in sizes.items()}
            sources = (example.source for example in self._pairs(file))
            plan = plan_split(sources, self.seed, sizes["valid"], sizes["test"])
            if plan.sizes["train"] == 0:
                total = sum(plan.sizes.values())
                if total == 0:
                    raise DataError(self._empty_message(file, "split 'train'"))
                skipped = self.log.skipped(self._name(file))
                raise DataError(
                    f"{self._name(file)}: {total} usable pairs are too few to take "
                    + " and ".join(f"{n}_size={size}" for n, size in sizes.items() if size)
                    + " and keep a training pair; lower the sizes or give the held-out splits their own files"
                    + (f"\n{skipped}" if skipped else "")
                )
            self._plan = plan
        return self._plan

    def _empty_message(self, file: Any, what: str) -> str:
        """Why `file` gave no pairs: its skipped rows (the first few, with file:line) and their fixes, if any."""
        name = self._name(file)
        skipped = self.log.skipped(name)
        found = skipped or "the file has no data rows; check the file and the column settings"
        return f"{name}: no usable pairs for {what}: {found}"


# --- one file per split, possibly downloaded ------------------------------------------------

_FILE_PARAMS = (
    Param(
        "valid_path",
        str,
        None,
        "file of the valid split, in the same format; null takes valid_size pairs from the training file",
        nullable=True,
        path="file",
    ),
    Param(
        "test_path",
        str,
        None,
        "file of the test split, in the same format; null takes test_size pairs from the training file",
        nullable=True,
        path="file",
    ),
)
_REMOTE_PARAMS = (
    Param(
        "url", str, None, "where to download the training file when path is null (http(s) or file://)", nullable=True
    ),
    Param(
        "sha256", str, None, "expected sha256 of the file (downloaded or at path); null skips the check", nullable=True
    ),
    Param(
        "cache_dir",
        str,
        "~/.cache/transduce",
        "directory that keeps downloads (file name from the URL)",
        path="new directory",
    ),
    Param("member", str, None, "file to read inside a .zip archive at path or url; null: a plain file", nullable=True),
)
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class _FileCorpus(_Corpus):
    """A corpus with one file per split; the training file may be a download or a zip member."""

    def __init__(
        self,
        path: str | None = None,
        *,
        valid_path: str | None = None,
        test_path: str | None = None,
        url: str | None = None,
        sha256: str | None = None,
        cache_dir: str = "~/.cache/transduce",
        member: str | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if path is None and url is None:
            raise ValueError("give the training file as data.path, or data.url to download it")
        if sha256 is not None and not _SHA256.fullmatch(sha256):
            raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
        self.path, self.url, self.sha256, self.cache_dir, self.member = path, url, sha256, cache_dir, member
        self.valid_path, self.test_path = valid_path, test_path
        self._train: tuple[Path, str | None] | None = None

    def _file(self, name: str) -> tuple[Path, str | None] | None:
        if name == "train":
            return self._training_file()
        own = self.valid_path if name == "valid" else self.test_path
        return (Path(own), None) if own is not None else None

    def _training_file(self) -> tuple[Path, str | None]:
        """The local training file: `path`, or the verified download of `url` (resolved once)."""
        if self._train is None:
            if self.path is not None:
                path = Path(self.path).expanduser()
                if path.is_file():
                    verify_sha256(path, self.sha256, str(path), "check that data.path names the right file")
            else:
                path = fetch(str(self.url), self.sha256, self.cache_dir, self.log)
            self._train = (path, self.member)
        return self._train

    def _user_file(self, path: Path) -> tuple[Path, str | None]:
        return (path, None)

    def _name(self, file: tuple[Path, str | None]) -> str:
        return display_name(*file)

    def _lines(self, file: tuple[Path, str | None]) -> Iterator[Line]:
        path, member = file
        return read_lines(path, member=member, hint="; check data.path (or the split's *_path)")


# --- tsv -------------------------------------------------------------------------------


class TabSeparated(_FileCorpus):
    """Tab-separated pairs, one per line (e.g. Tatoeba/manythings `fra.txt`); extra columns are ignored."""

    name = "tsv"
    params = (
        Param("path", str, None, "the training file; null downloads data.url", nullable=True, path="file"),
        Param("source_column", int, 0, "0-based column of the source text", min=0),
        Param("target_column", int, 1, "0-based column of the target text", min=0),
        Param("header", bool, False, "the first line of every file is a header: skip it"),
        *_FILE_PARAMS,
        *_SPLIT_PARAMS,
        *_REMOTE_PARAMS,
    )

    def __init__(
        self,
        path: str | None = None,
        source_column: int = 0,
        target_column: int = 1,
        header: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(path, **common)
        if source_column == target_column:
            raise ValueError(f"source_column and target_column are both {source_column}; they must differ")
        self.source_column, self.target_column, self.header = source_column, target_column, header

    def _pairs(self, file: tuple[Path, str | None]) -> Iterator[Example]:
        name = self._name(file)
        tally = self.log.tally(name)
        needed = max(self.source_column, self.target_column) + 1
        for line in self._lines(file):
            if self.header and line.number == 1:
                continue
            where = f"{name}:{line.number}"
            if line.problem:
                tally.bad_line(where, line)
            elif line.text.strip():
                fields = line.text.split("\t")
                if len(fields) < needed:
                    reason = f"expected at least {needed} tab-separated columns, got {len(fields)}"
                    tally.bad_row(where, reason, self._column_fix(len(fields)))
                elif pair := checked_pair(fields[self.source_column], fields[self.target_column], where, tally):
                    yield pair

    def _column_fix(self, count: int) -> str:
        """What to do about rows with `count` columns, fewer than the column settings need."""
        if count == 1:
            return "the rows have no tab: columns of a tsv file are separated by tabs (for commas use data: csv)"
        settings = (("source_column", self.source_column), ("target_column", self.target_column))
        beyond = [f"{key} is {column}" for key, column in settings if column >= count]
        return (
            f"rows have {count} columns, {' and '.join(beyond)} (counted from 0): "
            f"set data.source_column and data.target_column below {count}"
        )


# --- csv -------------------------------------------------------------------------------


class _Feed:
    """Decoded lines (with a line ending, as the csv module wants) that remember the first bad line met."""

    def __init__(self, lines: Iterator[Line]) -> None:
        self.lines = lines
        self.problem: Line | None = None

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        if line.problem and self.problem is None:
            self.problem = line
        return line.text + "\n"


class CommaSeparated(_FileCorpus):
    """CSV with a header naming its columns (e.g. ChatbotData.csv: Q,A,label); quoted fields as in RFC 4180."""

    name = "csv"
    params = (
        Param("path", str, None, "the training file; null downloads data.url", nullable=True, path="file"),
        Param("source_column", str, REQUIRED, "header name of the source column, e.g. Q"),
        Param("target_column", str, REQUIRED, "header name of the target column, e.g. A"),
        Param("delimiter", str, ",", "one character between fields"),
        *_FILE_PARAMS,
        *_SPLIT_PARAMS,
        *_REMOTE_PARAMS,
    )

    def __init__(
        self,
        path: str | None = None,
        *,
        source_column: str,
        target_column: str,
        delimiter: str = ",",
        **common: Any,
    ) -> None:
        super().__init__(path, **common)
        if len(delimiter) != 1 or delimiter in '\r\n"':
            raise ValueError(f"delimiter must be one character other than a quote or line break, got {delimiter!r}")
        if not source_column or not target_column or source_column == target_column:
            raise ValueError("source_column and target_column must name two different header columns")
        self.source_column, self.target_column, self.delimiter = source_column, target_column, delimiter

    def _pairs(self, file: tuple[Path, str | None]) -> Iterator[Example]:
        name = self._name(file)
        tally = self.log.tally(name)
        feed = _Feed(self._lines(file))
        reader = csv.reader(feed, delimiter=self.delimiter)
        columns: tuple[int, int] | None = None
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                reason = "a line break (\\r) inside an unquoted field" if "new-line" in str(error) else error
                row, feed.problem = [], feed.problem or Line(reader.line_num, "", f"not valid CSV ({reason})")
            where = f"{name}:{start}"
            problem, feed.problem = feed.problem, None
            if columns is None:
                if problem:
                    fix = f"; {problem.fix}" if problem.fix else ""
                    raise DataError(f"{where}: the header line is unreadable: {problem.problem}{fix}")
                if row:
                    columns = self._columns(row, where)
            elif problem:
                tally.bad_line(where, problem)
            elif row:
                if len(row) <= max(columns):
                    reason = f"expected at least {max(columns) + 1} columns, got {len(row)}"
                    s = "s" * (len(row) != 1)
                    fix = f"rows have {len(row)} field{s}: check data.delimiter ({self.delimiter!r}) and the quoting"
                    tally.bad_row(where, reason, fix)
                elif pair := checked_pair(row[columns[0]], row[columns[1]], where, tally):
                    yield pair

    def _columns(self, header: list[str], where: str) -> tuple[int, int]:
        """Indices of the source and target columns in a header row."""
        names = [cell.strip() for cell in header]
        missing = [c for c in (self.source_column, self.target_column) if c not in names]
        if missing:
            listing = ", ".join(repr(n) for n in names)
            raise DataError(
                f"{where}: no column {missing[0]!r} in the header (columns: {listing}); "
                "set data.source_column and data.target_column to header names"
            )
        return names.index(self.source_column), names.index(self.target_column)


# --- parallel files --------------------------------------------------------------------


class ParallelFiles(_Corpus):
    """Line-aligned files, STEM.SRC and STEM.TGT per split (e.g. Multi30k train.de / train.en)."""

    name = "parallel"
    params = (
        Param("path", str, REQUIRED, "directory holding the STEM.LANGUAGE files", path="directory"),
        Param("source_language", str, REQUIRED, "file suffix of the source side, e.g. de"),
        Param("target_language", str, REQUIRED, "file suffix of the target side, e.g. en"),
        Param("train", str, "train", "file stem of the training split"),
        Param(
            "valid", str, "val", "file stem of the valid split; null takes valid_size pairs from train", nullable=True
        ),
        Param("test", str, "test", "file stem of the test split; null: test_size pairs from train", nullable=True),
        *_SPLIT_PARAMS,
    )

    def __init__(
        self,
        path: str,
        source_language: str,
        target_language: str,
        train: str = "train",
        valid: str | None = "val",
        test: str | None = "test",
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if source_language == target_language:
            raise ValueError(f"source_language and target_language are both {source_language!r}; they must differ")
        self.directory = Path(path).expanduser()
        self.languages = (source_language, target_language)
        self.stems = {"train": train, "valid": valid, "test": test}

    def _file(self, name: str) -> Path | None:
        stem = self.stems[name]
        return None if stem is None else self.directory / stem

    def _user_file(self, path: Path) -> Path:
        """`DIR/STEM`, or either file of the pair: `DIR/STEM.de` names the same pair."""
        return path.with_suffix("") if path.suffix.lstrip(".") in self.languages else path

    def _name(self, stem: Path) -> str:
        return f"{stem}.{{{','.join(self.languages)}}}"

    def _pairs(self, stem: Path) -> Iterator[Example]:
        tally = self.log.tally(self._name(stem))
        files = [Path(f"{stem}.{language}") for language in self.languages]
        source_lines, target_lines = (read_lines(f, hint=self._missing_hint(f)) for f in files)
        for source, target in zip_longest(source_lines, target_lines):
            if source is None or target is None:
                self._unaligned(files, source, target, source_lines, target_lines)
            bad = next(((f, line) for f, line in zip(files, (source, target), strict=True) if line.problem), None)
            if bad is not None:
                tally.bad_line(f"{bad[0]}:{bad[1].number}", bad[1])
            elif pair := checked_pair(source.text, target.text, f"{files[0]}:{source.number}", tally):
                yield pair

    @staticmethod
    def _unaligned(files: list[Path], source: Line | None, target: Line | None, *rests: Iterator[Line]) -> None:
        """Raise the error for files of different lengths, with both line counts."""
        ahead = source or target
        assert ahead is not None
        longer = ahead.number + sum(1 for rest in rests for _ in rest)
        counts = (longer, ahead.number - 1) if source else (ahead.number - 1, longer)
        raise DataError(
            f"{files[0]} has {counts[0]} lines but {files[1]} has {counts[1]}; line-aligned files must have "
            "the same number of lines (line i of one translates line i of the other)"
        )

    def _missing_hint(self, file: Path) -> str:
        """What to do about a missing file: the stems that do have both files here."""
        try:
            stems = sorted(
                p.name[: -len(self.languages[0]) - 1]
                for p in self.directory.glob(f"*.{self.languages[0]}")
                if (self.directory / f"{p.name[: -len(self.languages[0]) - 1]}.{self.languages[1]}").is_file()
            )
        except OSError:
            stems = []
        found = f"stems with both files in {self.directory}: {', '.join(stems)}" if stems else "no complete pair there"
        return f" ({found}); set data.train, data.valid or data.test to a stem, or valid/test to null to split train"


@hookimpl
def transduce_components() -> list[type[DataSource]]:
    """Register the built-in corpus formats."""
    return [TabSeparated, CommaSeparated, ParallelFiles]
