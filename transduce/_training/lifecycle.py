"""A run's lifecycle, told to its observers: the recipe's loggers and plugins' lifecycle hooks.

The events are the specs marked `@event` in `transduce._plugins.hookspecs`; nothing
here names one. Each run gets its own pluggy manager, the way pytest registers
its own features at configure time: it holds the registry's plugins and the
recipe's loggers, each logger registered as a plugin object whose hook
implementations are the event methods it overrides (`run_start` implements
`transduce_run_start`). The trainer emits an event with one call,
`emit("epoch_end", record=...)`, checked against the spec's argument names.

Calls go to each implementation in turn, loggers first (in recipe order), then
plugins (in pluggy's order), rather than through pluggy's hook call, which
would stop at the first failure: an observer is not allowed to stop training.
One that raises is unregistered from the run's manager (all its events) with
a single warning naming it and its distribution; `failures` keeps those
warnings. Interruptions (Ctrl-C) are not caught. An event nobody observes
costs a check of its argument names and of an empty list.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy
from rich.console import Console
from rich.markup import escape

from transduce._model import assembly as pipeline
from transduce._plugins import hookspecs
from transduce._plugins.contracts import Logger
from transduce._plugins.hookspecs import Event
from transduce._plugins.registry import Registry, new_plugin_manager

Warn = Callable[[str], None]


@dataclass(frozen=True)
class _Listener:
    """One hook implementation observing one event, and how messages name it."""

    label: str
    impl: pluggy.HookImpl

    def call(self, payload: dict[str, Any]) -> None:
        """Pass the arguments the implementation asks for, by its parameter names (as pluggy does)."""
        self.impl.function(*(payload[name] for name in self.impl.argnames))


class _LoggerPlugin:
    """A recipe's logger as a plugin object of its run: hook `transduce_X` for each event method `X` it overrides."""

    def __init__(self, logger: Logger, events: Iterable[Event]) -> None:
        for event in events:
            if getattr(type(logger), event.name, None) is not getattr(Logger, event.name, None):
                setattr(self, event.hook, _by_position(getattr(logger, event.name), event))


def _by_position(method: Callable[..., object], event: Event) -> Callable[..., object]:
    """`method` as an implementation of `event` taking the spec's arguments in order, whatever `method` names them.

    pluggy reads an implementation's parameter names through `__wrapped__`,
    so it validates and calls this one as if it were the spec; `tryfirst`
    puts loggers before every plugin.
    """

    def by_position(*arguments: object) -> object:
        return method(*arguments)

    by_position.__wrapped__ = event.spec  # type: ignore[attr-defined]
    return hookspecs.hookimpl(tryfirst=True)(by_position)


def _warn_on_stderr(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False)


class Lifecycle:
    """Dispatches the events of one run to loggers (in recipe order), then to plugins' lifecycle hooks."""

    def __init__(self, registry: Registry, loggers: Sequence[Logger] = (), warn: Warn | None = None) -> None:
        self._warn = warn or _warn_on_stderr
        self.failures: list[str] = []
        self._events = hookspecs.events()
        self._emitted: set[str] = set()
        self._providers = registry.providers
        self._manager = new_plugin_manager()
        for name, plugin in registry.plugins.list_name_plugin():
            if plugin is not None:  # None: a name pluggy blocks
                self._manager.register(plugin, name=name)
        self._loggers: dict[str, str] = {}  # the loggers' plugin names -> their labels
        for index in reversed(range(len(loggers))):  # pluggy calls the implementation registered last first
            name = f"logger #{index}"
            self._manager.register(_LoggerPlugin(loggers[index], self._events.values()), name=name)
            self._loggers[name] = _logger_label(registry, loggers[index])
        self._refuse_wrappers()
        self._listeners = self._collect()

    @classmethod
    def for_recipe(cls, registry: Registry, recipe: dict[str, Any], warn: Warn | None = None) -> Lifecycle:
        """The recipe's loggers (constructed here) and every plugin's lifecycle hooks."""
        return cls(registry, pipeline.loggers(registry, recipe), warn)

    def listeners(self, event: str) -> list[str]:
        """Who currently observes `event` (labels), in call order."""
        return [listener.label for listener in self._listeners[event]]

    def emit(self, name: str, **arguments: Any) -> None:
        """Tell every observer of event `name`: `arguments` are the spec's, by name (anything else is a TypeError).

        Dicts and lists are deep-copied once per event, and only when someone
        listens, so an observer cannot change the trainer's record or recipe.
        """
        event = self._events.get(name)
        if event is None:
            raise TypeError(
                f"no lifecycle event {name!r} in transduce/_plugins/hookspecs.py (events: {', '.join(self._events)})"
            )
        event.check(arguments)
        if event.only_after is not None and event.only_after not in self._emitted:
            return
        self._emitted.add(name)
        listeners = self._listeners[name]
        if not listeners:
            return
        payload = {
            key: copy.deepcopy(value) if isinstance(value, (dict, list)) else value for key, value in arguments.items()
        }
        for listener in listeners:
            try:
                listener.call(payload)
            except Exception as exc:  # an observer's bug must not stop the run
                self._disable(listener.impl.plugin_name)
                self._fail(
                    f"{listener.label} failed in {name}: {type(exc).__name__}: {exc}; "
                    "it is disabled for the rest of this run, which goes on without it"
                )

    # --- who listens --------------------------------------------------------------------

    def _collect(self) -> dict[str, list[_Listener]]:
        """Each event's implementations in call order (pluggy's list is last-called-first), wrappers left out."""
        listeners = {}
        for event in self._events.values():
            impls = reversed(getattr(self._manager.hook, event.hook).get_hookimpls())
            listeners[event.name] = [
                _Listener(self._label(impl, event.hook), impl) for impl in impls if not _is_wrapper(impl)
            ]
        return listeners

    def _refuse_wrappers(self) -> None:
        for event in self._events.values():
            for impl in getattr(self._manager.hook, event.hook).get_hookimpls():
                if _is_wrapper(impl):
                    label = self._label(impl, event.hook)
                    self._fail(f"{label} is ignored: lifecycle hooks are notifications, not wrappers")

    def _label(self, impl: pluggy.HookImpl, hook: str) -> str:
        if impl.plugin_name in self._loggers:
            return self._loggers[impl.plugin_name]
        return f"hook {hook} of plugin {self._providers.get(impl.plugin_name, impl.plugin_name)}"

    def _disable(self, plugin_name: str) -> None:
        self._manager.unregister(name=plugin_name)
        self._listeners = self._collect()

    def _fail(self, message: str) -> None:
        self.failures.append(message)
        self._warn(message)


def _is_wrapper(impl: pluggy.HookImpl) -> bool:
    return bool(impl.hookwrapper or impl.wrapper)


def _logger_label(registry: Registry, logger: Logger) -> str:
    """ "logger 'jsonl' from transduce 0.1.0 (entry point 'loggers')", or its class when not registered."""
    name = getattr(logger, "name", type(logger).__qualname__)
    info = registry.get("logger", name) if isinstance(name, str) else None
    if info is None or info.cls is not type(logger):
        return f"logger {name!r} ({type(logger).__module__}.{type(logger).__qualname__})"
    return f"logger {name!r} from {info.provider}"
