"""Plain-text input for translation: one sentence per line, streamed, with line numbers in errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from transduce.errors import DataError


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
