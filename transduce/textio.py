"""Plain-text files for translation: input read line by line with line numbers in errors, and output that
never destroys a file (written beside its place and moved there, never over the input), streamed in chunks."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from transduce.errors import DataError, Interrupted, RunError
from transduce.interrupt import StopSignals

Item = TypeVar("Item")


def count_lines(path: Path) -> int:
    """Lines in `path` (a last line without a newline counts), read in blocks: cheap even for large files."""
    count, last = 0, b"\n"
    with _open(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def read_lines(path: Path) -> Iterator[str]:
    """Each line of a UTF-8 file without its line ending; a bad byte is a DataError naming the line."""
    with _open(path) as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path}:{number}: not valid UTF-8 ({error.reason} at byte {error.start}); "
                    "convert the file to UTF-8, e.g. with iconv"
                ) from None
            yield text.rstrip("\r\n")


def _open(path: Path):  # noqa: ANN202 - a binary file object
    try:
        return Path(path).open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such input file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the input file ({error.strerror or error})") from None


def refuse_same_file(output: Path, source: Path | None) -> None:
    """A RunError when writing `output` would replace the input: `source`, or stdin when it is None.

    The same file under another path, through a symbolic or hard link, counts (device and inode compared);
    an output that does not exist yet counts when its resolved path is the input's.
    """
    try:
        read = os.stat(source) if source is not None else os.fstat(sys.stdin.fileno())
    except (OSError, ValueError):  # no input file (read_lines says so) or no stdin to compare with
        return
    if not stat.S_ISREG(read.st_mode):
        return
    try:
        written = os.stat(output)
    except FileNotFoundError:
        same = source is not None and os.path.realpath(output) == os.path.realpath(source)
    except OSError:
        return
    else:
        same = (written.st_dev, written.st_ino) == (read.st_dev, read.st_ino)
    if same:
        what = f"the input file {source}" if source is not None else "the file stdin reads"
        raise RunError(
            f"--output {output} is {what}: writing the translations there would destroy the input; "
            "name another output file"
        )


class Output:
    """Where `translate` writes its lines, chunk by chunk.

    `mark()` after each whole chunk; at the end `finish()`, on a stop `finish_partial()` (the output then
    holds the marked chunks), on a failure `discard()`. This class writes a stream in place (stdout, a pipe,
    a terminal): what was written stays written.
    """

    def __init__(self, handle: TextIO, name: str, owned: bool = True) -> None:
        self.handle, self.name, self.owned = handle, name, owned

    def write(self, text: str) -> None:
        self.handle.write(text)

    def flush(self) -> None:
        self.handle.flush()

    def mark(self) -> None:
        """The lines written so far are whole: flush them."""
        self.flush()

    def finish(self) -> str:
        """Complete: flush (and close what we opened); returns where the output is."""
        self.flush()
        self._close()
        return self.name

    def finish_partial(self) -> str:
        """Stopped: keep what was marked; returns where it is."""
        return self.finish()

    def discard(self) -> None:
        """Failed: nothing more is written (a write the close would flush may fail again: it is dropped)."""
        with contextlib.suppress(OSError):
            self._close()

    def _close(self) -> None:
        if self.owned:
            self.handle.close()


class StagedFile(Output):
    """A regular file written to a hidden temporary file beside it, then moved into place.

    Whatever happens, `path` holds either what it held before or complete output: a failure discards
    the temporary file; a stop keeps the marked chunks (whole lines) in `path` when `path` did not exist
    before, else beside it in PATH.partial, never over an existing file.
    `path` is a symbolic link's target, so the link stays a link.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(os.path.realpath(path))
        existing = _stat_or_none(self.path)
        self.existed = existing is not None
        self.staging, fd = _create_beside(self.path)
        if existing is not None:  # keep its mode; a new file has the umask's, as `open` would give it
            with contextlib.suppress(OSError):
                os.fchmod(fd, stat.S_IMODE(existing.st_mode))
        super().__init__(os.fdopen(fd, "w", encoding="utf-8"), str(path))
        self.marked = 0

    def mark(self) -> None:
        super().mark()
        self.marked = self.handle.tell()

    def finish(self) -> str:
        self._sync()
        os.replace(self.staging, self.path)
        return self.name

    def finish_partial(self) -> str:
        self.handle.truncate(self.marked)  # drop a chunk the stop may have cut short
        self._sync()
        if not self.existed and _link_new(self.staging, self.path):
            return self.name
        beside = self.path.with_name(self.path.name + ".partial")
        return str(beside) if _link_new(self.staging, beside) else str(self.staging)

    def discard(self) -> None:
        super().discard()
        self.staging.unlink(missing_ok=True)

    def _sync(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()


def open_output(path: Path | None) -> Output:
    """stdout for None or '-'; a regular file (or a name not taken yet) as a StagedFile; anything else (a pipe,
    a device) opened and written in place. An unwritable place is a RunError naming it."""
    if path is None or str(path) == "-":
        return Output(sys.stdout, "stdout", owned=False)
    staged = ""
    try:
        found = _stat_or_none(path)
        if found is not None and stat.S_ISDIR(found.st_mode):
            raise IsADirectoryError(errno.EISDIR, "it is a directory; name a file in it")
        if found is not None and not stat.S_ISREG(found.st_mode):
            return Output(path.open("w", encoding="utf-8"), str(path))
        staged = f"; it is written as a temporary file in {Path(os.path.realpath(path)).parent} first"
        return StagedFile(path)
    except OSError as error:
        raise RunError(f"{path}: cannot write the output file ({error.strerror or error}){staged}") from None


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _create_beside(path: Path) -> tuple[Path, int]:
    """A new hidden file .NAME.RANDOM.part in `path`'s folder, opened for writing, and its descriptor."""
    for _ in range(100):
        staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            return staging, os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {path}")


def _link_new(staging: Path, target: Path) -> bool:
    """Move `staging` to `target` unless `target` exists (a hard link refuses to replace a file); False if it does."""
    try:
        os.link(staging, target)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links
        if target.exists():
            return False
        os.replace(staging, target)
        return True
    staging.unlink()
    return True


def write_streamed(
    items: Iterator[Item],
    render: Callable[[list[Item], int], str],
    output: Path | None,
    err: Console,
    *,
    chunk: int,
    total: int | None = None,
    label: str = "translating",
    noun: str = "translations",
) -> tuple[int, str]:
    """Write `render(piece, first)` for each `chunk` items (`first`: the piece's first item number, from 1) to
    `output` (open_output: stdout for None or '-'), with a progress bar on `err` when it is a terminal;
    returns (items written, where the output is).

    Memory stays flat: a chunk is rendered, written and flushed before the next is read. A file is staged
    beside its place and moved there once complete, so a failure leaves it as it was. A stop (Ctrl-C,
    SIGTERM) keeps the whole chunks written (Output.finish_partial) and raises Interrupted saying where
    the `noun` of how many input lines are.
    """
    target = open_output(output)
    progress = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    done = 0
    try:
        with progress, StopSignals():
            task = progress.add_task(label, total=total)
            while piece := list(itertools.islice(items, chunk)):
                target.write(render(piece, done + 1))
                target.mark()
                done += len(piece)
                progress.advance(task, len(piece))
        return done, target.finish()
    except KeyboardInterrupt as stop:
        raise _stopped(target, done, noun, getattr(stop, "status", 130)) from None
    except OSError as error:
        target.discard()
        raise RunError(f"{target.name}: cannot write the {noun} ({error.strerror or error})") from None
    except BaseException:
        target.discard()  # e.g. a line that is not UTF-8: the output stays as it was
        raise


def _stopped(target: Output, done: int, noun: str, status: int) -> Interrupted:
    """The error a stop raises, once the whole chunks written are kept (Output.finish_partial)."""
    try:
        where = target.finish_partial()
    except OSError as error:
        return Interrupted(
            f"{target.name}: the {noun} of the first {done:,} input lines could not be kept "
            f"({error.strerror or error})",
            status=status,
        )
    kept = f"{where} holds the {noun} of the first {done:,} input lines, whole and in input order"
    if where != target.name:  # the output existed: the whole chunks went beside it
        kept = f"{target.name} is left as it was; {kept}"
    return Interrupted(kept, status=status)
