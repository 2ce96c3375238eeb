"""The run directory: everything a training run writes, in one place, never overwritten silently.

Two trainings never write one run at once: a trainer holds `RunDir.lock()`,
an advisory `fcntl.flock` on `train.lock`. The kernel drops a flock when its
process dies, however it dies, so a lock left by a crashed trainer is never
mistaken for a live one (no pid guessing, no pid-reuse race); the file's
JSON (pid, host, start time, command) only names the holder in messages.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transduce.errors import RunError

#: A run needs at least this much free space to start (checkpoints, vocabularies, reports).
MIN_FREE_BYTES = 64 * 1024 * 1024
#: Errors of a full or read-only disk, turned into a RunError by `RunDir.lock()`.
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


class RunDir:
    """Paths of a run's files and the rules for creating, reopening and locking it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.created = False  # by `create`: only then may `discard` remove anything
        #: Directories `create` made (the run's and missing parents), outermost first; `discard` removes them.
        self.made: list[Path] = []

    recipe = property(lambda self: self.path / "recipe.yaml")
    source_vocab = property(lambda self: self.path / "vocab.source.json")
    target_vocab = property(lambda self: self.path / "vocab.target.json")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.pt")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.pt")
    metrics_log = property(lambda self: self.path / "metrics.jsonl")
    data_summary = property(lambda self: self.path / "data.json")
    components = property(lambda self: self.path / "components.json")
    data_files = property(lambda self: self.path / "data-files.json")
    lock_file = property(lambda self: self.path / "train.lock")
    lexicon = property(lambda self: self.path / "lexicon.pt")  # learned at the first shortlisted decoding

    def tokenizer_dir(self, side: str) -> Path:
        """Where the tokenizer of "source" or "target" keeps what it learned (e.g. a subword model)."""
        return self.path / "tokenizers" / side

    def report(self, name: str, suffix: str) -> Path:
        return self.path / f"{name}.{suffix}"

    @staticmethod
    def default_path(recipe_path: Path, root: Path = Path("runs")) -> Path:
        return root / f"{Path(recipe_path).stem}-{time.strftime('%Y%m%d-%H%M%S')}"

    @classmethod
    def create(cls, path: Path) -> RunDir:
        """A new, empty run directory that can be written; an existing non-empty one is refused."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunError(
                f"{path} already exists and is not empty; continue it with "
                f"`transduce train --resume {path}`, or choose another --run-dir"
            )
        if path.is_symlink() and not path.exists():
            raise RunError(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist; create it first")
        missing = [p for p in (path, *path.parents) if not p.exists() and not p.is_symlink()][::-1]
        run = cls(path)
        run.created = True
        try:
            for directory in missing:
                directory.mkdir()
                run.made.append(directory)
            (path / "checkpoints").mkdir(exist_ok=True)
            run.check_writable()
        except (OSError, RunError) as exc:
            run.discard()
            if isinstance(exc, RunError):
                raise
            raise RunError(f"{path}: cannot write the run directory ({exc.strerror or exc})") from None
        return run

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """An existing run directory, checked for the files every run has."""
        run = cls(Path(path))
        if not run.path.is_dir():
            raise RunError(f"{path}: no such run directory")
        if not run.recipe.exists():
            raise RunError(
                f"{path}: not a run directory (no recipe.yaml); give the directory `transduce train` "
                "created, e.g. runs/dates-..."
            )
        return run

    def check_writable(self, min_free: int = MIN_FREE_BYTES) -> None:
        """Refuse, before any training, a run directory that cannot be written or whose disk is nearly full."""
        probe = self.path / ".write-test"
        try:
            probe.write_text("ok", encoding="utf-8")
            probe.unlink()
            free = shutil.disk_usage(self.path).free
        except OSError as exc:
            raise RunError(f"{self.path}: cannot write the run directory ({exc.strerror or exc})") from None
        if free < min_free:
            raise RunError(
                f"{self.path}: only {free / 2**20:.1f} MiB free on its disk, a run needs at least "
                f"{min_free / 2**20:.0f} MiB; free some space (or train into another --run-dir)"
            )

    def checkpoint(self, which: str = "best") -> Path:
        """The best checkpoint, falling back to the last one; a clear error when neither exists."""
        for candidate in (self.best_checkpoint, self.last_checkpoint) if which == "best" else (self.last_checkpoint,):
            if candidate.exists():
                return candidate
        raise RunError(
            f"{self.path}: no checkpoint yet (the run stopped before its first epoch ended); "
            f"resume it with `transduce train --resume {self.path}`"
        )

    # --- what a checkpoint was saved with ----------------------------------------------

    def fingerprints(self) -> dict[str, str]:
        """SHA-256 of the vocabularies and of every file under tokenizers/, by path relative to the run.

        Checkpoints record these: a vocabulary or tokenizer file changed after training maps the model's
        indices to the wrong tokens without any error, so opening the run checks them (`check_fingerprints`).
        """
        files = [self.source_vocab, self.target_vocab]
        tokenizers = self.path / "tokenizers"
        if tokenizers.is_dir():
            files += sorted(p for p in tokenizers.rglob("*") if p.is_file() and not p.is_symlink())
        return {p.relative_to(self.path).as_posix(): sha256_of(p) for p in files if p.is_file()}

    def check_fingerprints(self, saved: dict[str, Any], checkpoint: Path) -> None:
        """Refuse files that differ from those `checkpoint` was saved with (its 'files' record; none: older run)."""
        recorded = saved.get("files")
        if recorded is None:
            return
        if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
            raise RunError(f"{checkpoint}: its record of the run's files ('files') is not a mapping of names to hashes")
        for name, digest in recorded.items():
            path = self.path / str(name)
            if not _inside(path, self.path) or not _plain_name(str(name)):
                raise RunError(f"{checkpoint}: its record of the run's files names {name!r:.80}, not a file of the run")
            if not path.is_file():
                raise RunError(f"{path} is missing: {checkpoint.name} was saved with it; {_put_back(name)}")
            if sha256_of(path) != digest:
                raise RunError(f"{path} changed since {checkpoint.name} was saved ({_why(name)}); {_put_back(name)}")

    def discard(self) -> None:
        """Remove what a new run wrote before its first checkpoint, so the same command can run again.

        Only for a run made by `create`, which accepts only an empty or missing directory: everything
        inside was written by this run (core, tokenizers, loggers) and goes; the directory itself goes only
        when `create` made it (with the parents it made). A folder the user made, or a symbolic link to
        one, stays, emptied; links inside are removed, never followed.
        """
        if not self.created:
            return
        if self.path.is_dir():
            for entry in self.path.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        for directory in reversed(self.made):
            try:
                directory.rmdir()  # only while empty: never what someone else put beside the run
            except OSError:
                break
        self.made, self.created = [], False

    def log_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics_log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    # --- plugin provenance -------------------------------------------------------

    def save_components(self, components: dict[str, str]) -> None:
        """Record which distribution provides each component ('family/name' -> 'distribution version') as JSON."""
        from transduce._runs.checkpoint import write_text_atomic  # noqa: PLC0415 - torch only when a run is written

        write_text_atomic(self.components, json.dumps(components, indent=2, sort_keys=True) + "\n")

    def saved_components(self) -> dict[str, str]:
        """The recorded providers: components.json, else the last checkpoint's 'components' (loaded safely); {}
        when neither has one."""
        if self.components.is_file():
            try:
                data = json.loads(self.components.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError) as exc:
                raise RunError(f"{self.components}: not a readable components record ({exc})") from None
        elif self.last_checkpoint.is_file():
            from transduce._runs import checkpoint  # noqa: PLC0415 - torch only when there is no JSON record

            saved = checkpoint.load(self.last_checkpoint)
            data = saved.get("components", {}) if isinstance(saved, dict) else None
        else:
            return {}
        if not isinstance(data, dict):
            raise RunError(f"{self.components}: not a readable components record (expected a JSON object)")
        return {str(key): str(value) for key, value in data.items()}

    # --- one trainer at a time -----------------------------------------------------

    @contextmanager
    def lock(self, notice: Callable[[str], None] | None = None) -> Iterator[RunDir]:
        """Hold the run's training lock for the `with` body; a second trainer gets a RunError naming the holder.

        A lock file left by a process that died is taken over, with `notice`
        (default: stderr) told whose it was. Inside the body, a full or
        read-only disk (ENOSPC, EDQUOT, EROFS) becomes a RunError that says so.
        """
        self.check_writable()
        handle = _acquire(self.lock_file, notice or _to_stderr)
        try:
            yield self
        except OSError as exc:
            if exc.errno not in DISK_ERRORS:
                raise
            raise RunError(_disk_message(self, exc)) from None
        finally:
            _release(self.lock_file, handle)


def sha256_of(path: Path) -> str:
    """The file's SHA-256 as hex, read in blocks (data files may be large)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise RunError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return digest.hexdigest()


def _inside(path: Path, root: Path) -> bool:
    return os.path.normpath(path).startswith(os.path.normpath(root) + os.sep)


def _plain_name(name: str) -> bool:
    """A name a file system accepts: no NUL byte, no part longer than 255 bytes."""
    return "\0" not in name and all(len(part.encode("utf-8", "surrogatepass")) <= 255 for part in name.split("/"))


def _why(name: str) -> str:
    if name.startswith("vocab."):
        return "the model's outputs would be read as the wrong tokens: two swapped tokens give wrong output silently"
    return "the tokenizer would split text differently from the way the model was trained"


def _put_back(name: str) -> str:
    return f"put back the {name} the run was trained with (e.g. from a copy of the run), or train a new run"


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _acquire(path: Path, notice: Callable[[str], None]) -> int:
    """An fd of `path` holding an exclusive flock, its content describing this process."""
    import fcntl  # noqa: PLC0415 - POSIX only; imported where needed so the module loads everywhere

    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunError(f"{path}: cannot create the run's lock file ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(_read(fd))
            os.close(fd)
            raise RunError(
                f"{path.parent} is being trained by another process ({holder}); wait for it to finish, "
                f"or stop it first. Two trainings must never write one run directory."
            ) from None
        except OSError as exc:  # a file system without locks
            os.close(fd)
            raise RunError(f"{path}: cannot lock the run directory ({exc.strerror or exc})") from None
        if _same_file(fd, path):  # not a file a finishing holder just removed
            break
        os.close(fd)
    previous = _read(fd)
    if previous:
        notice(f"note: taking over the training lock of {path.parent}: {_holder(previous)} ended without releasing it")
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    record["command"] = " ".join(sys.argv)
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
    return fd


def _release(path: Path, fd: int) -> None:
    """Remove the lock file (while still holding it, so no one locks a removed file), then unlock."""
    try:
        if _same_file(fd, path):
            path.unlink()
    except OSError:
        pass
    os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _read(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except ValueError:
        return {"pid": "?"}
    return data if isinstance(data, dict) else {"pid": "?"}


def _holder(record: dict[str, Any]) -> str:
    """'pid 123 on host x since 2026-11-22 03:00:00 +0000 (transduce train ...)'."""
    text = f"pid {record.get('pid', '?')} on host {record.get('host', '?')}"
    if record.get("started"):
        text += f" since {record['started']}"
    if record.get("command"):
        text += f" ({record['command']})"
    return text


def _disk_message(run: RunDir, exc: OSError) -> str:
    what = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "the disk is read-only"
    where = f" ({exc.filename})" if exc.filename else ""
    resume = (
        f"then continue with `transduce train --resume {run.path}`"
        if run.last_checkpoint.exists()
        else "then train again"
    )
    return f"{run.path}: cannot write the run{where}: {what}; free some space, {resume}"
