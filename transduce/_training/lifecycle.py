"""A run's lifecycle, told to its observers: the recipe's loggers and plugins' lifecycle hooks.

The trainer holds one `Lifecycle` and calls one method per event. Who listens
to which event is worked out once, at construction: a logger that keeps the
base class's no-op for an event, and a hook no plugin implements, are left
out, so an event nobody observes costs one check of an empty list.

An observer is not allowed to stop training: one that raises is disabled for
the rest of the run (all its events) with a single warning naming it and its
distribution; `failures` keeps those warnings. Interruptions (Ctrl-C) are not
caught.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from transduce._model import assembly as pipeline
from transduce._plugins.contracts import Logger
from transduce._plugins.registry import Registry
from transduce._reports.report import Report

EVENTS = ("run_start", "epoch_end", "validation_end", "checkpoint_saved", "evaluation_end", "run_end", "run_failed")

Warn = Callable[[str], None]


@dataclass(frozen=True)
class _Listener:
    """One observer of one event: `call(payload)` with the event's arguments by hookspec name."""

    label: str
    owner: tuple[str, object]  # what is disabled together when one of its calls fails: a logger or a plugin
    call: Callable[..., object]


def _warn_on_stderr(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False)


class Lifecycle:
    """Dispatches the events of one run to loggers (in recipe order), then to plugins' lifecycle hooks."""

    def __init__(self, registry: Registry, loggers: Sequence[Logger] = (), warn: Warn | None = None) -> None:
        self._warn = warn or _warn_on_stderr
        self.failures: list[str] = []
        self._started = False
        self._listeners: dict[str, list[_Listener]] = {event: [] for event in EVENTS}
        for logger in loggers:
            label = _logger_label(registry, logger)
            for event in EVENTS:
                if getattr(type(logger), event) is not getattr(Logger, event):
                    method = getattr(logger, event)  # positional: a subclass may rename the parameters
                    call = lambda p, m=method: m(*p.values())  # noqa: E731
                    self._listeners[event].append(_Listener(label, ("logger", id(logger)), call))
        for event in EVENTS:
            hook = f"transduce_{event}"
            for impl in reversed(getattr(registry.plugins.hook, hook).get_hookimpls()):  # pluggy's call order
                provider = registry.providers.get(impl.plugin_name, impl.plugin_name)
                label = f"hook {hook} of plugin {provider}"
                if impl.hookwrapper or impl.wrapper:
                    self._fail(f"{label} is ignored: lifecycle hooks are notifications, not wrappers")
                    continue
                call = lambda p, impl=impl: impl.function(*(p[name] for name in impl.argnames))  # noqa: E731
                self._listeners[event].append(_Listener(label, ("plugin", impl.plugin_name), call))

    @classmethod
    def for_recipe(cls, registry: Registry, recipe: dict[str, Any], warn: Warn | None = None) -> Lifecycle:
        """The recipe's loggers (constructed here) and every plugin's lifecycle hooks."""
        return cls(registry, pipeline.loggers(registry, recipe), warn)

    def listeners(self, event: str) -> list[str]:
        """Who currently observes `event` (labels), in call order."""
        return [listener.label for listener in self._listeners[event]]

    # --- events, in the order a run emits them -----------------------------------------

    def run_start(self, recipe: dict[str, Any], run_dir: Path) -> None:
        self._started = True
        if self._listeners["run_start"]:
            self._emit("run_start", recipe=copy.deepcopy(recipe), run_dir=Path(run_dir))

    def validation_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self._listeners["validation_end"]:
            self._emit("validation_end", epoch=epoch, metrics=dict(metrics))

    def checkpoint_saved(self, path: Path, kind: str) -> None:
        if self._listeners["checkpoint_saved"]:
            self._emit("checkpoint_saved", path=Path(path), kind=kind)

    def epoch_end(self, record: dict[str, Any]) -> None:
        if self._listeners["epoch_end"]:
            self._emit("epoch_end", record=copy.deepcopy(record))

    def evaluation_end(self, report: Report) -> None:
        if self._listeners["evaluation_end"]:
            self._emit("evaluation_end", report=report)

    def run_end(self, report: Report) -> None:
        if self._listeners["run_end"]:
            self._emit("run_end", report=report)

    def run_failed(self, error: BaseException) -> None:
        """Only after `run_start`: a run that never started has nothing for observers to close."""
        if self._started and self._listeners["run_failed"]:
            self._emit("run_failed", error=error)

    # --- dispatch ----------------------------------------------------------------------

    def _emit(self, event: str, **payload: Any) -> None:
        for listener in self._listeners[event]:
            try:
                listener.call(payload)
            except Exception as exc:  # an observer's bug must not stop the run
                self._disable(listener.owner)
                self._fail(
                    f"{listener.label} failed in {event}: {type(exc).__name__}: {exc}; "
                    "it is disabled for the rest of this run, which goes on without it"
                )

    def _disable(self, owner: tuple[str, object]) -> None:
        for event, listeners in self._listeners.items():
            self._listeners[event] = [each for each in listeners if each.owner != owner]

    def _fail(self, message: str) -> None:
        self.failures.append(message)
        self._warn(message)


def _logger_label(registry: Registry, logger: Logger) -> str:
    """ "logger 'jsonl' from transduce 0.1.0 (entry point 'loggers')", or its class when not registered."""
    name = getattr(logger, "name", type(logger).__qualname__)
    info = registry.get("logger", name) if isinstance(name, str) else None
    if info is None or info.cls is not type(logger):
        return f"logger {name!r} ({type(logger).__module__}.{type(logger).__qualname__})"
    return f"logger {name!r} from {info.provider}"
