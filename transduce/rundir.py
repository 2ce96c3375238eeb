"""The run directory: everything a training run writes, in one place, never overwritten silently."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from transduce.errors import RunError


class RunDir:
    """Paths of a run's files and the rules for creating and reopening it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    recipe = property(lambda self: self.path / "recipe.yaml")
    source_vocab = property(lambda self: self.path / "vocab.source.json")
    target_vocab = property(lambda self: self.path / "vocab.target.json")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.pt")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.pt")
    metrics_log = property(lambda self: self.path / "metrics.jsonl")
    data_summary = property(lambda self: self.path / "data.json")

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
        """A new, empty run directory; an existing non-empty one is refused."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunError(
                f"{path} already exists and is not empty; continue it with "
                f"`transduce train --resume {path}`, or choose another --run-dir"
            )
        try:
            (path / "checkpoints").mkdir(parents=True, exist_ok=True)
            probe = path / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise RunError(f"{path}: cannot write the run directory ({exc.strerror or exc})") from None
        return cls(path)

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

    def checkpoint(self, which: str = "best") -> Path:
        """The best checkpoint, falling back to the last one; a clear error when neither exists."""
        for candidate in (self.best_checkpoint, self.last_checkpoint) if which == "best" else (self.last_checkpoint,):
            if candidate.exists():
                return candidate
        raise RunError(
            f"{self.path}: no checkpoint yet (the run stopped before its first epoch ended); "
            f"resume it with `transduce train --resume {self.path}`"
        )

    def discard(self) -> None:
        """Remove a new run that failed before its first checkpoint, so the same command can run again.

        Only for a run made by `create`, which accepts only an empty or missing
        directory: everything inside was written by this run (core, tokenizers,
        loggers), so the whole directory goes.
        """
        shutil.rmtree(self.path, ignore_errors=True)

    def log_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics_log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
