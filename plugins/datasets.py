"""Built-in data sources.

`dates` is the toy task of the book "Deep Learning from Scratch 2": turn a
human-written date into ISO `YYYY-MM-DD`. It either generates pairs (so the
toolkit works with no download) or reads the book's `date.txt`.
"""

from __future__ import annotations

import datetime
import random
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from transduce_builtins.textfiles import BAD_ROW_POLICIES, ReadLog, read_lines

from transduce.api import SPLITS, DataError, DataSource, Example, Param, hookimpl

# --- the book's file format ----------------------------------------------------

#: Width the book pads sources to; `write_date_file` keeps it so files diff cleanly.
SOURCE_WIDTH = 29
_TARGET = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EXPECTED = "expected '<source>_<YYYY-MM-DD>'"


def _parse_line(line: str) -> Example | str:
    """One `<source padded>_<target>` line (newline already removed) -> Example, or why it is not one."""
    source, sep, target = line.partition("_")
    source, target = source.rstrip(), target.rstrip()
    if not sep or not source or not _TARGET.fullmatch(target):
        return f"{_EXPECTED}, got {line[:60]!r}"
    try:
        datetime.date.fromisoformat(target)
    except ValueError:
        return f"{_EXPECTED}, got {line[:60]!r} (not a calendar date)"
    return Example(source, target)


def read_date_file(path: str | Path, *, hint: str = "", log: ReadLog | None = None) -> list[Example]:
    """Every pair of a file in the book's date.txt format, in file order.

    Decodes line by line so a bad byte is reported with its line number. A
    malformed line is handled by `log`'s bad-rows policy: DataError with
    file:line ("error", the default without a log), or left out and counted
    for notes() ("skip"). Blank lines are passed over. `hint` is appended to
    the message for a missing file.
    """
    tally = (log or ReadLog("error")).tally(str(path))
    examples = []
    for line in read_lines(path, hint=hint):
        where = f"{path}:{line.number}"
        if line.problem:
            tally.bad_line(where, line)
        elif line.text.strip():
            parsed = _parse_line(line.text)
            if isinstance(parsed, str):
                tally.bad_row(where, parsed)
            else:
                examples.append(parsed)
    return examples


def write_date_file(path: str | Path, examples: Iterable[Example | tuple[str, str]]) -> None:
    """Write pairs in the book's format so generated data can be saved and read back.

    Sources are padded to 29 characters (or the longest source). A source
    with `_` or a line break, or with trailing whitespace, would not read back
    the same, so it is refused.
    """
    pairs = [Example(*pair) for pair in examples]
    for source, target in pairs:
        if "_" in source or "\n" in source or "\r" in source or source != source.rstrip() or not source:
            raise DataError(f"{path}: cannot write source {source!r} in the date.txt format")
        if "\n" in target or "\r" in target:
            raise DataError(f"{path}: cannot write target {target!r} in the date.txt format")
    width = max([SOURCE_WIDTH, *(len(source) for source, _ in pairs)])
    text = "".join(f"{source:<{width}}_{target}\n" for source, target in pairs)
    Path(path).write_text(text, encoding="utf-8", newline="\n")


# --- generation ----------------------------------------------------------------

FIRST_DAY = datetime.date(1950, 1, 1)
LAST_DAY = datetime.date(2049, 12, 31)
MONTHS = "january february march april may june july august september october november december".split()
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()


def _abbrev(month: int) -> str:
    return MONTHS[month - 1][:3]


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _sept(month: int) -> str:
    """Abbreviation as people write it without a period: 'sept' besides 'sep'."""
    return "sept" if month == 9 else _abbrev(month)


# Each format renders a date in lower case; case is varied afterwards. No
# format is all digits with dashes, which would be too close to the target;
# slashes are month-first (US) and dots day-first, never both orders.
Format = Callable[[datetime.date], str]
FORMATS: dict[str, Format] = {
    "september 27, 1994": lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    "tuesday, september 27, 1994": lambda d: f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}, {d.year}",
    "9/27/94": lambda d: f"{d.month}/{d.day}/{d.year % 100:02d}",
    "sep 27, 1994": lambda d: f"{_abbrev(d.month)} {d.day}, {d.year}",
    "27 sep 1994": lambda d: f"{d.day} {_abbrev(d.month)} {d.year}",
    "27 september 1994": lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    "27.09.1994": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
    "tuesday 27 september 1994": lambda d: f"{WEEKDAYS[d.weekday()]} {d.day} {MONTHS[d.month - 1]} {d.year}",
    "9/27/1994": lambda d: f"{d.month}/{d.day}/{d.year}",
    "sept 27 94": lambda d: f"{_sept(d.month)} {d.day} {d.year % 100:02d}",
    "27th of september, 1994": lambda d: f"{_ordinal(d.day)} of {MONTHS[d.month - 1]}, {d.year}",
    "september 27th, 1994": lambda d: f"{MONTHS[d.month - 1]} {_ordinal(d.day)}, {d.year}",
    "tue, sep 27, 1994": lambda d: f"{WEEKDAYS[d.weekday()][:3]}, {_abbrev(d.month)} {d.day}, {d.year}",
    "09/27/1994": lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",
}


def _capitalise(text: str) -> str:
    """'27th of september' -> '27th of September' (str.title would give '27Th Of')."""
    return " ".join(word if word == "of" else word[:1].upper() + word[1:] for word in text.split(" "))


_CASES = (str.lower, str.upper, _capitalise)
_RENDERERS = tuple(FORMATS.values())


def render(day: datetime.date, rng: random.Random) -> str:
    """A random human rendering of `day` in a random format and case."""
    text = rng.choice(_RENDERERS)(day)
    return rng.choice(_CASES)(text)


def generate_splits(seed: int, sizes: dict[str, int]) -> dict[str, list[Example]]:
    """Generated pairs; valid and test dates are distinct and never occur in train.

    Held-out calendar dates are drawn first without replacement; train then
    draws (with repetition) from the remaining dates, so a model cannot score
    on test by memorising a date it saw in training.
    """
    rng = random.Random(seed)
    first, last = FIRST_DAY.toordinal(), LAST_DAY.toordinal()
    held_out = sizes["valid"] + sizes["test"]
    if held_out >= last - first + 1:
        raise DataError(
            f"data: valid_size + test_size = {held_out} leaves no date for training; "
            f"the range {FIRST_DAY}..{LAST_DAY} has {last - first + 1} days"
        )
    drawn = rng.sample(range(first, last + 1), held_out)
    taken = set(drawn)
    rest = [day for day in range(first, last + 1) if day not in taken]
    days = {
        "valid": drawn[: sizes["valid"]],
        "test": drawn[sizes["valid"] :],
        "train": rng.choices(rest, k=sizes["train"]),
    }
    to_date = datetime.date.fromordinal
    return {
        name: [Example(render(to_date(day), rng), to_date(day).isoformat()) for day in ordinals]
        for name, ordinals in days.items()
    }


# --- splitting a file ----------------------------------------------------------


def split_by_target(
    examples: list[Example],
    seed: int,
    valid_size: int,
    test_size: int,
    train_size: int | None,
    where: str,
    skipped: str = "",
) -> dict[str, list[Example]]:
    """Seeded split that keeps all lines of one target date in one split.

    The book's file repeats lines verbatim, so a line-level split would leak
    test lines into train. Whole groups are added to valid, then test, until
    each reaches its size (so sizes are approximate); train gets the rest.
    Within a split, pairs keep their file order. `skipped` (the file's skipped rows) ends the message when
    there are too few pairs.
    """
    if len(examples) < valid_size + test_size + 1:
        raise DataError(
            f"{where}: {len(examples)} pairs are too few for valid_size={valid_size}, "
            f"test_size={test_size} and at least one training pair" + (f"; {skipped}" if skipped else "")
        )
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    for example in examples:
        counts[example.target] = counts.get(example.target, 0) + 1
    targets = sorted(counts)
    rng.shuffle(targets)
    owner, filled = {}, {"valid": 0, "test": 0}
    limits = (("valid", valid_size), ("test", test_size))
    for target in targets:
        split = next((n for n, size in limits if filled[n] < size), "train")
        owner[target] = split
        if split != "train":
            filled[split] += counts[target]
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for example in examples:
        splits[owner[example.target]].append(example)
    if not splits["train"]:
        raise DataError(f"{where}: no pairs left for training after valid and test; lower their sizes")
    if train_size is not None and train_size < len(splits["train"]):
        keep = sorted(rng.sample(range(len(splits["train"])), train_size))
        splits["train"] = [splits["train"][i] for i in keep]
    return splits


# --- the component -------------------------------------------------------------


class Dates(DataSource):
    """Date-format conversion pairs: human-written dates to ISO, generated or read from the book's date.txt.

    Generated dates lie in 1950-01-01..2049-12-31 so two-digit years are
    unambiguous (50-99 -> 19xx, 00-49 -> 20xx). In both modes no target date
    of valid or test occurs in train.
    """

    name = "dates"
    params = (
        Param(
            "path",
            str,
            None,
            "file in the book's date.txt format ('<source>_<YYYY-MM-DD>' per line); null generates pairs",
            nullable=True,
            path="file",
        ),
        Param("seed", int, 1234, "seed of the generation and of the split"),
        Param(
            "train_size",
            int,
            None,
            "training pairs; null means 20000 generated pairs, or every remaining pair of the file",
            min=1,
            max=10_000_000,
            nullable=True,
        ),
        Param(
            "valid_size",
            int,
            1000,
            "validation pairs (whole date groups in file mode, so about); 0: no validation, the last epoch's "
            "model is kept as the best",
            min=0,
        ),
        Param(
            "test_size",
            int,
            1000,
            "test pairs (whole date groups in file mode, so about); 0: no test split (score another with "
            "evaluate.split)",
            min=0,
        ),
        Param(
            "bad_rows",
            str,
            "skip",
            "a malformed line of the file: skip it and report it in the notes, or stop with an error",
            choices=BAD_ROW_POLICIES,
        ),
    )

    DEFAULT_TRAIN_SIZE = 20_000

    def __init__(
        self,
        path: str | None = None,
        seed: int = 1234,
        train_size: int | None = None,
        valid_size: int = 1000,
        test_size: int = 1000,
        bad_rows: str = "skip",
    ) -> None:
        self.path = path
        self.seed = seed
        self.train_size = train_size
        self.valid_size = valid_size
        self.test_size = test_size
        self.log = ReadLog(bad_rows)
        self._splits: dict[str, list[Example]] | None = None

    def notes(self) -> list[str]:
        """Malformed lines skipped in file mode (file:line and reason), if any."""
        return self.log.notes()

    def split(self, name: str) -> list[Example]:
        """The pairs of one split; all three are built on the first call and cached."""
        if name not in SPLITS:
            raise DataError(f"data: unknown split {name!r} (valid splits: {', '.join(SPLITS)})")
        if self._splits is None:
            self._splits = self._build()
        return self._splits[name]

    def read_file(self, path: Path) -> list[Example]:
        """Every pair of a file in the book's format, unsplit (for `evaluate --data FILE`)."""
        return read_date_file(path, log=self.log)

    def _build(self) -> dict[str, list[Example]]:
        if self.path is None:
            sizes = {
                "train": self.train_size or self.DEFAULT_TRAIN_SIZE,
                "valid": self.valid_size,
                "test": self.test_size,
            }
            return generate_splits(self.seed, sizes)
        hint = "; pass an existing file with --set data.path=FILE, or null to generate pairs"
        examples = read_date_file(self.path, hint=hint, log=self.log)
        where = str(self.path)
        skipped = self.log.skipped(where)
        return split_by_target(examples, self.seed, self.valid_size, self.test_size, self.train_size, where, skipped)


@hookimpl
def transduce_components() -> list[type[DataSource]]:
    """Register the built-in data sources."""
    return [Dates]
