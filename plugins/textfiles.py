"""Reading machinery shared by the file-based data sources.

Everything here streams: files are read line by line (bytes, decoded per
line, so one bad byte costs one row and is reported with its line number),
splits are decided from a hash of the source sentence, and de-duplication
keeps 8-byte digests only. Nothing holds a corpus in memory.
"""

from __future__ import annotations

import codecs
import hashlib
import heapq
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from transduce.api import DataError, Example

BAD_ROW_POLICIES = ("skip", "error")
#: Bad rows quoted in the notes per file; the rest are counted.
SHOWN_BAD_ROWS = 5
#: Distinct fixes suggested per file when its rows are unusable.
SHOWN_FIXES = 3
DOWNLOAD_TIMEOUT_S = 30
_SKIP_HINT = "to skip such rows and go on, run with --set data.bad_rows=skip"


# --- lines -----------------------------------------------------------------------


#: Fixes for what makes a line undecodable; one is shown once in an error however many lines it explains.
UTF16_FIX = "the file looks UTF-16: re-save it as UTF-8"
NOT_TEXT_FIX = "the file is not UTF-8 text (a binary file, or another encoding?): give a UTF-8 text file"
#: File signatures that say what a line 1 that is not text is instead.
_SIGNATURES = (
    (codecs.BOM_UTF16_LE, "starts with a UTF-16 byte-order mark", UTF16_FIX),
    (codecs.BOM_UTF16_BE, "starts with a UTF-16 byte-order mark", UTF16_FIX),
    (b"PK\x03\x04", "starts like a zip archive", "the file is a zip archive: set data.member to the file inside it"),
    (b"\x1f\x8b", "starts like a gzip file", "the file is gzip-compressed: decompress it first (gunzip FILE)"),
)


class Line(NamedTuple):
    """One line of a file: its 1-based number, its text without the line ending, why it is unusable and what
    would fix that."""

    number: int
    text: str
    problem: str | None = None
    fix: str | None = None


def display_name(path: str | Path, member: str | None = None) -> str:
    """How messages name a file, or a member of a zip archive."""
    return f"{path}/{member}" if member else str(path)


@contextmanager
def open_binary(path: str | Path, member: str | None = None, hint: str = "") -> Iterator[BinaryIO]:
    """Open a file (or a member of a zip archive) for reading bytes; problems become DataError.

    `hint` is appended to the message for a missing file, to say what to do.
    """
    path = Path(path)
    with ExitStack() as stack:
        try:
            if member is None:
                handle = stack.enter_context(open(path, "rb"))
            else:
                archive = stack.enter_context(zipfile.ZipFile(path))
                handle = stack.enter_context(archive.open(member))
        except FileNotFoundError:
            raise DataError(f"{path}: no such data file{hint}") from None
        except IsADirectoryError:
            raise DataError(f"{path}: is a directory, expected a data file{hint}") from None
        except OSError as error:
            raise DataError(f"{path}: cannot read data file ({error.strerror or error})") from None
        except zipfile.BadZipFile:
            raise DataError(f"{path}: not a zip archive; set data.member=null to read it as a plain file") from None
        except KeyError:
            names = ", ".join(archive.namelist()[:20]) or "none"
            raise DataError(f"{path}: the archive has no member {member!r} (members: {names})") from None
        yield handle  # type: ignore[misc]


def decode_line(number: int, raw: bytes) -> Line:
    """Decode one line of bytes; a UTF-8 BOM on line 1 is dropped, `\\n` or `\\r\\n` removed.

    A line that is not UTF-8 text says what it looks like instead (UTF-16, a zip or gzip file, binary) and
    carries the fix, so an error about a whole unusable file can say what to do.
    """
    if number == 1 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    signature = next((s for s in _SIGNATURES if raw.startswith(s[0])), None) if number == 1 else None
    if signature is not None:
        return _unusable(number, raw, signature[1], signature[2])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        reason = f"not valid UTF-8 ({error.reason} at byte {error.start})"
        return _unusable(number, raw, reason, NOT_TEXT_FIX)
    if "\0" in text:
        return _unusable(number, raw, "contains a NUL byte", NOT_TEXT_FIX)
    return Line(number, text)


def _unusable(number: int, raw: bytes, problem: str, fix: str) -> Line:
    """A line that is not UTF-8 text, with what it looks like; NULs at every other byte mean UTF-16."""
    text = raw.decode("utf-8", "replace").replace("\0", "")
    if fix == NOT_TEXT_FIX and _looks_utf16(raw):
        problem, fix = "has a NUL byte between its characters", UTF16_FIX
    return Line(number, text, problem, fix)


def _looks_utf16(raw: bytes) -> bool:
    """Whether a line's NUL bytes all sit at every other byte, as in UTF-16 text of Latin letters."""
    zeros = raw.count(0)
    if raw == b"\0":  # the second byte of a UTF-16 line break, alone on its "line"
        return True
    return zeros >= 2 and 3 * zeros >= len(raw) and zeros in (raw[0::2].count(0), raw[1::2].count(0))


def read_lines(path: str | Path, *, member: str | None = None, hint: str = "") -> Iterator[Line]:
    """Every line of a file, streamed, numbered from 1; undecodable lines carry their `problem`."""
    with open_binary(path, member, hint) as handle:
        for number, raw in enumerate(handle, start=1):
            yield decode_line(number, raw)


# --- bad rows, duplicates and the notes about them ---------------------------------------


@dataclass(eq=False)
class Tally:
    """What one pass over one file (or split) found: bad rows, the fixes they suggest, and removed duplicates."""

    log: ReadLog
    key: str
    bad: int = 0
    shown: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    duplicates: int = 0

    def bad_row(self, where: str, reason: str, fix: str | None = None) -> None:
        """Count a bad row, or raise DataError at it when the policy is 'error'; `fix` says what would mend it."""
        if self.log.policy == "error":
            raise DataError(f"{where}: {reason}; {f'{fix}; or, ' if fix else ''}{_SKIP_HINT}")
        self.bad += 1
        if len(self.shown) < SHOWN_BAD_ROWS:
            self.shown.append(f"{where}: {reason}")
        if fix and fix not in self.fixes and len(self.fixes) < SHOWN_FIXES:
            self.fixes.append(fix)
        self.log.offer(self)

    def bad_line(self, where: str, line: Line) -> None:
        """Count a line that could not be decoded, with the fix its problem suggests."""
        self.bad_row(where, line.problem or "unreadable", line.fix)

    def duplicate(self) -> None:
        self.duplicates += 1
        self.log.offer(self)


class ReadLog:
    """Collects tallies for `notes()`.

    A file is usually read several times (the core iterates the training split
    a few times); every pass makes a fresh Tally and the log keeps, per key,
    the one that got furthest, so nothing is counted twice.
    """

    def __init__(self, policy: str = "skip") -> None:
        if policy not in BAD_ROW_POLICIES:
            raise ValueError(f"bad_rows must be one of {', '.join(BAD_ROW_POLICIES)}, got {policy!r}")
        self.policy = policy
        self._best: dict[str, Tally] = {}
        self._extra: list[str] = []

    def tally(self, key: str) -> Tally:
        return Tally(self, key)

    def offer(self, tally: Tally) -> None:
        best = self._best.get(tally.key)
        if best is None or tally.bad + tally.duplicates > best.bad + best.duplicates:
            self._best[tally.key] = tally

    def bad_rows(self, key: str) -> int:
        best = self._best.get(key)
        return best.bad if best else 0

    def add_note(self, line: str) -> None:
        if line not in self._extra:
            self._extra.append(line)

    def skipped(self, key: str) -> str:
        """For an error about `key` having no usable pairs: its skipped rows (the first few with file:line and
        reason, then a count) and what would fix them; '' when none were skipped."""
        best = self._best.get(key)
        if best is None or not best.bad:
            return ""
        lines = [f"{best.bad} bad row{'s were' if best.bad != 1 else ' was'} skipped:", *_listed(best)]
        return "\n".join(lines + [f"{fix[:1].upper()}{fix[1:]}." for fix in best.fixes])

    def notes(self) -> list[str]:
        lines = list(self._extra)
        for key, tally in self._best.items():
            if tally.bad:
                lines.append(f"{key}: skipped {tally.bad} bad row{'s' * (tally.bad != 1)} (data.bad_rows=skip)")
                lines.extend(_listed(tally))
            if tally.duplicates:
                s = "s" * (tally.duplicates != 1)
                lines.append(f"{key}: removed {tally.duplicates} repeated pair{s} (data.deduplicate=true)")
        return lines


def _listed(tally: Tally) -> list[str]:
    """The bad rows shown, indented, and how many more there were."""
    more = [f"  ... and {tally.bad - len(tally.shown)} more"] if tally.bad > len(tally.shown) else []
    return [f"  {shown}" for shown in tally.shown] + more


def checked_pair(source: str, target: str, where: str, tally: Tally) -> Example | None:
    """The stripped pair, or None (after counting a bad row) when a side is empty."""
    source, target = source.strip(), target.strip()
    if not source or not target:
        tally.bad_row(where, f"empty {'source' if not source else 'target'}")
        return None
    return Example(source, target)


def _digest(*texts: str) -> bytes:
    return hashlib.blake2b("\0".join(texts).encode("utf-8"), digest_size=8).digest()


def deduplicated(examples: Iterable[Example], tally: Tally) -> Iterator[Example]:
    """`examples` without exact repeats of a pair (first kept); keeps only an 8-byte digest per pair."""
    seen: set[bytes] = set()
    for example in examples:
        digest = _digest(example.source, example.target)
        if digest in seen:
            tally.duplicate()
            continue
        seen.add(digest)
        yield example


def require_some(examples: Iterable[Example], describe_empty: Callable[[], str]) -> Iterator[Example]:
    """Pass `examples` through; raise DataError(describe_empty()) when there were none."""
    count = 0
    for example in examples:
        count += 1
        yield example
    if count == 0:
        raise DataError(describe_empty())


# --- grouped, seeded splitting -------------------------------------------------------


def group_key(source: str, seed: int) -> int:
    """A seeded 64-bit hash of the stripped source sentence: pairs sharing a source share a key."""
    digest = hashlib.blake2b(source.strip().encode("utf-8"), digest_size=8, key=str(seed).encode()[:64])
    return int.from_bytes(digest.digest(), "big")


@dataclass(frozen=True)
class SplitPlan:
    """Where each source-sentence group goes: keys up to `valid_cut` to valid, up to `test_cut` to test.

    `sizes` are the pair counts of each split as planned (before de-duplication).
    """

    seed: int
    valid_cut: int
    test_cut: int
    sizes: dict[str, int]

    def assign(self, source: str) -> str:
        key = group_key(source, self.seed)
        if key <= self.valid_cut:
            return "valid"
        if key <= self.test_cut:
            return "test"
        return "train"


def plan_split(sources: Iterable[str], seed: int, valid_size: int, test_size: int) -> SplitPlan:
    """Plan a seeded split of a stream of source sentences, whole groups at a time.

    Groups are ordered by their seeded key; valid takes groups until it holds
    at least `valid_size` pairs, then test until it holds `test_size`, and
    train keeps the rest: each held-out split overshoots by less than one
    group. A size of 0 means that split comes from elsewhere. The caller
    checks that `sizes["train"]` is not 0.

    One pass; memory holds only the groups that may still be held out: a
    max-heap of the smallest keys, covering `valid_size + test_size` pairs
    plus the largest group seen (valid's overshoot can be no larger).
    """
    needed = valid_size + test_size
    heap: list[int] = []  # negated keys: -heap[0] is the largest key kept
    counts: dict[int, int] = {}
    covered = total = largest = 0
    for source in sources:
        total += 1
        key = group_key(source, seed)
        if key in counts:
            counts[key] += 1
            largest = max(largest, counts[key])
        elif heap and key > -heap[0] and covered >= needed + largest:
            continue  # it would start after every held-out pair: train
        else:
            counts[key] = 1
            largest = max(largest, 1)
            heapq.heappush(heap, -key)
        covered += 1
        while heap and covered - counts[-heap[0]] >= needed + largest:  # the last group cannot be held out
            covered -= counts.pop(-heapq.heappop(heap))
    cuts, sizes = {"valid": -1, "test": -1}, {"valid": 0, "test": 0}
    for key in sorted(counts):
        name = "valid" if sizes["valid"] < valid_size else "test" if sizes["test"] < test_size else None
        if name is None:
            break
        cuts[name], sizes[name] = key, sizes[name] + counts[key]
    sizes["train"] = total - sizes["valid"] - sizes["test"]
    return SplitPlan(seed, cuts["valid"], cuts["test"], sizes)


# --- remote files ----------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_path(url: str, cache_dir: str | Path) -> Path:
    """Where a download of `url` is kept: the URL's file name inside `cache_dir`."""
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "download"
    return Path(cache_dir).expanduser() / name


def fetch(url: str, sha256: str | None, cache_dir: str | Path, log: ReadLog) -> Path:
    """The local copy of `url`: from the cache (checksum verified) or downloaded into it atomically.

    A download goes to a temporary file in the cache directory and is renamed
    into place only once complete and verified, so the cache never holds a
    partial or wrong file. Failures say which URL to fetch by hand and where.
    """
    target = cache_path(url, cache_dir)
    if target.exists():
        verify_sha256(target, sha256, f"the cached file {target}", f"delete or replace it ({url} is its source)")
        return target
    manual = f"download {url} yourself and save it as {target}"
    if sha256:
        manual += f" (its sha256 must be {sha256})"
    manual += ", or set data.path to a local copy"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as error:
        raise DataError(f"cannot write to the cache directory {target.parent} ({error.strerror or error})") from None
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            shutil.copyfileobj(response, out, 1 << 20)
        verify_sha256(temporary, sha256, f"the download of {url}", f"check data.url and data.sha256, or {manual}")
        os.replace(temporary, target)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
        raise DataError(f"could not download {url} ({reason}); {manual}") from None
    finally:
        temporary.unlink(missing_ok=True)
    log.add_note(f"downloaded {url} to {target}")
    if not sha256:
        log.add_note(f"{target}: sha256 {file_sha256(target)}; pin it with --set data.sha256=... to verify later runs")
    return target


def verify_sha256(path: Path, sha256: str | None, what: str, advice: str) -> None:
    """Raise DataError when `path` does not have the expected sha256 (no check when None)."""
    if not sha256:
        return
    actual = file_sha256(path)
    if actual != sha256.lower():
        raise DataError(f"{what} has sha256 {actual}, expected {sha256.lower()}; {advice}")
