"""Hook specifications: everything a plugin can implement, each hook declared once, here.

Plugins are found through the entry-point group `transduce`; each entry point
names a module (or object) whose functions are marked with `hookimpl`.

Besides `transduce_components`, a plugin may observe every training run
through the lifecycle events below (global observers; a recipe selects
per-run observers with `loggers:` instead, see `transduce.api.Logger`). A spec
marked `@event` is the one declaration of that event: the trainer emits it by
name, `transduce._training.lifecycle` dispatches it, and `Logger` gets its no-op method
(the hook's name without `transduce_`) from it. Events are notifications: an
implementation may take any subset of the arguments, returns nothing, and must
not change what it receives (dicts and lists arrive as copies); one that raises
is disabled for the rest of the run with a warning, and training goes on.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import pluggy

from transduce._plugins.base import Component, FinalReport

PROJECT = "transduce"
PREFIX = f"{PROJECT}_"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Spec = TypeVar("Spec", bound=Callable[..., None])


@dataclass(frozen=True)
class Event:
    """One lifecycle event, as its spec declares it; `name` is the hook's without the prefix (a logger's method)."""

    name: str
    spec: Callable[..., None]
    only_after: str | None = None  # the event is dropped unless this one was emitted before in the run

    @property
    def hook(self) -> str:
        return self.spec.__name__

    @cached_property
    def arguments(self) -> tuple[str, ...]:
        """The spec's parameter names in order: what an emit passes by name and a logger receives by position."""
        return tuple(inspect.signature(self.spec).parameters)

    def check(self, given: Mapping[str, object]) -> None:
        """Raise TypeError unless `given` names exactly the spec's arguments: a misnamed emit fails where it is made."""
        if given.keys() != set(self.arguments):
            expected = ", ".join(self.arguments) or "no arguments"
            raise TypeError(
                f"event {self.name!r} takes {expected} (see {self.hook} in transduce/_plugins/hookspecs.py), "
                f"got {', '.join(given) or 'none'}"
            )


_EVENT = f"{PROJECT}_event"  # the attribute `event` sets on a spec


def event(spec: Spec | None = None, *, only_after: str | None = None) -> Any:
    """Declare a hook spec a lifecycle event: `@event`, or `@event(only_after="run_start")`."""

    def mark(function: Spec) -> Spec:
        setattr(function, _EVENT, Event(function.__name__.removeprefix(PREFIX), function, only_after))
        return hookspec(function)

    return mark if spec is None else mark(spec)


def events() -> dict[str, Event]:
    """Every lifecycle event by name, in the order they are declared here (the order a run emits them)."""
    marked = (getattr(value, _EVENT, None) for value in list(globals().values()))
    return {each.name: each for each in marked if isinstance(each, Event)}


@hookspec
def transduce_components() -> list[type[Component]]:
    """Return the component classes this plugin provides.

    Each class subclasses one family base from `transduce.api` and sets a
    `name` that is unique within its family across all installed plugins.
    """


# --- lifecycle events, in the order a run emits them ------------------------------------


@event
def transduce_run_start(recipe: dict[str, Any], run_dir: Path) -> None:
    """A run starts (or resumes) in `run_dir` with the resolved `recipe`, before the data is read."""


@event
def transduce_validation_end(epoch: int, metrics: dict[str, float]) -> None:
    """The valid split was scored after `epoch`: metric name -> score (0-100)."""


@event
def transduce_checkpoint_saved(path: Path, kind: str) -> None:
    """A checkpoint was written atomically at `path`; `kind` is "best" or "last".

    An epoch's "best" (when it improved, or every epoch without a valid split) comes before its "last"; a
    "last" also comes mid-epoch (`train.checkpoint_every`, `train.checkpoint_minutes`, a stop request).
    """


@event
def transduce_epoch_end(record: dict[str, Any]) -> None:
    """An epoch ended; `record` is its line of metrics.jsonl.

    It holds epoch, step, loss, tokens_per_second, seconds and lr, and `valid` (metric -> score) and `best`
    (true) when the epoch was validated.
    """


@event
def transduce_evaluation_end(report: FinalReport) -> None:
    """The best checkpoint was scored on the evaluation split: the final `Report`."""


@event
def transduce_run_end(report: FinalReport) -> None:
    """The run finished; `report` is the final report, already written in the run directory."""


@event(only_after="run_start")
def transduce_run_failed(error: BaseException) -> None:
    """A started run stopped on `error` (an interruption included); the exception propagates afterwards."""


@hookspec
def transduce_commands() -> list[Any]:
    """Return the `transduce` subcommands this plugin adds: `transduce.api.Command` subclasses (made with no
    arguments) or instances. A name a built-in command has is refused; two plugins claiming one name both
    lose it (see transduce._cli.commands)."""
