"""Hook specifications: everything a plugin can implement.

Plugins are found through the entry-point group `transduce`; each entry point
names a module (or object) whose functions are marked with `hookimpl`.

Besides `transduce_components`, a plugin may observe every training run
through the lifecycle hooks below (global observers; a recipe selects
per-run observers with `loggers:` instead, see `transduce.api.Logger`). An
implementation may take any subset of a hook's arguments. Observers must not
change what they receive; one that raises is disabled for the rest of the run
with a warning, and training goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from transduce.components import Component

if TYPE_CHECKING:
    from transduce.report import Report

PROJECT = "transduce"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def transduce_components() -> list[type[Component]]:
    """Return the component classes this plugin provides.

    Each class subclasses one family base from `transduce.api` and sets a
    `name` that is unique within its family across all installed plugins.
    """


@hookspec
def transduce_run_start(recipe: dict[str, Any], run_dir: Path) -> None:
    """A run starts (or resumes) in `run_dir` with the resolved `recipe`."""


@hookspec
def transduce_epoch_end(record: dict[str, Any]) -> None:
    """An epoch ended; `record` is its metrics.jsonl line: epoch, step, loss, tokens_per_second, seconds,
    and `valid` (metric -> score) and `best` (true) when it was validated."""


@hookspec
def transduce_validation_end(epoch: int, metrics: dict[str, float]) -> None:
    """The valid split was scored after `epoch`: metric name -> score (0-100)."""


@hookspec
def transduce_checkpoint_saved(path: Path, kind: str) -> None:
    """A checkpoint was written atomically at `path`; `kind` is "last" or "best"."""


@hookspec
def transduce_evaluation_end(report: Report) -> None:
    """The best checkpoint was scored on the evaluation split: the final `Report`."""


@hookspec
def transduce_run_end(report: Report) -> None:
    """The run finished; `report` is the final report, already written in the run directory."""


@hookspec
def transduce_run_failed(error: BaseException) -> None:
    """The run stopped on `error` (an interruption included); the exception propagates afterwards."""


@hookspec
def transduce_commands() -> list[Any]:
    """Return the `transduce` subcommands this plugin adds: `transduce.api.Command` subclasses (made with no
    arguments) or instances. A name a built-in command has is refused; two plugins claiming one name both
    lose it (see transduce.commands)."""
