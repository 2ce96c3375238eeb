"""The component registry: finds plugins through entry points and indexes their components.

Built-in and third-party plugins are found the same way, through the
entry-point group `transduce`. Every component class is recorded with the
distribution that provides it, so messages and listings can name it.
"""

from __future__ import annotations

import importlib.metadata as metadata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pluggy

from transduce import hookspecs
from transduce.components import BASES, FAMILIES, Component
from transduce.errors import PluginError
from transduce.params import Param, did_you_mean

ENTRY_POINT_GROUP = "transduce"


@dataclass(frozen=True)
class Provider:
    """Where a plugin comes from: its distribution, version and entry point."""

    distribution: str
    version: str
    entry_point: str

    def __str__(self) -> str:
        return f"{self.distribution} {self.version} (entry point {self.entry_point!r})"


@dataclass(frozen=True)
class ComponentInfo:
    """A registered component class and what is known about it."""

    family: str
    name: str
    cls: type[Component]
    provider: Provider

    @property
    def description(self) -> str:
        return self.cls.description()

    @property
    def params(self) -> tuple[Param, ...]:
        return tuple(self.cls.params)


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be loaded, or a component of it that was refused, and why."""

    provider: Provider
    problem: str


class Registry:
    """Components by family and name, and the plugins that failed to load."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, ComponentInfo]] = {f: {} for f in FAMILIES}
        self.broken: list[BrokenPlugin] = []

    def add(self, cls: object, provider: Provider) -> ComponentInfo:
        """Register one component class; a name taken in its family is an error."""
        info = _component_info(cls, provider)
        taken = self._components[info.family].get(info.name)
        if taken is not None:
            raise PluginError(
                f"{info.family} {info.name!r} is registered twice: by {taken.provider} "
                f"and by {provider}. Uninstall one of the two distributions."
            )
        self._components[info.family][info.name] = info
        return info

    def get(self, family: str, name: str) -> ComponentInfo | None:
        return self._components[family].get(name)

    def names(self, family: str) -> list[str]:
        return sorted(self._components[family])

    def unknown_name_message(self, family: str, name: object) -> str:
        """'unknown encoder 'lstn'. Did you mean 'lstm'? (available: ...)'."""
        names = self.names(family)
        listing = ", ".join(names) if names else "none installed"
        return f"unknown {family} {name!r}{did_you_mean(str(name), names)} (available: {listing})"

    def __iter__(self) -> Iterator[ComponentInfo]:
        for family in FAMILIES:
            for name in sorted(self._components[family]):
                yield self._components[family][name]


def _component_info(cls: object, provider: Provider) -> ComponentInfo:
    if not isinstance(cls, type) or not issubclass(cls, Component):
        raise PluginError(
            f"{provider} returned {cls!r} from transduce_components; expected a subclass "
            f"of one of transduce.api's bases ({', '.join(b.__name__ for b in BASES.values())})"
        )
    family = getattr(cls, "family", None)
    if family not in BASES or not issubclass(cls, BASES[family]):
        raise PluginError(f"{provider}: {cls.__qualname__} does not subclass a family base of transduce.api")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"{provider}: {cls.__qualname__} must set a non-empty string `name`")
    params = getattr(cls, "params", ())
    if not isinstance(params, (tuple, list)) or not all(isinstance(p, Param) for p in params):
        raise PluginError(f"{provider}: {cls.__qualname__}.params must hold only transduce.api.Param objects")
    return ComponentInfo(family=family, name=name, cls=cls, provider=provider)


def _load_entry_points(manager: pluggy.PluginManager) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        provider = Provider(
            distribution=dist.name if dist else "unknown",
            version=dist.version if dist else "?",
            entry_point=entry_point.name,
        )
        try:
            plugin = entry_point.load()
        except Exception as exc:  # any failure inside third-party code
            raise PluginError(f"plugin {provider} failed to import: {type(exc).__name__}: {exc}") from exc
        _register(manager, plugin, provider, providers)
    return providers


def _register(
    manager: pluggy.PluginManager, plugin: object, provider: Provider, providers: dict[str, Provider]
) -> None:
    """Register one plugin object; a malformed hook or a repeated module is a PluginError."""
    key = f"{provider.distribution}:{provider.entry_point}"
    try:
        manager.register(plugin, name=key)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"plugin {provider} cannot be registered: {exc}") from None
    providers[key] = provider


def discover(extra: Iterable[tuple[object, Provider]] = ()) -> Registry:
    """Load every plugin of the `transduce` entry-point group into a new registry.

    `extra` adds plugin objects that are not installed (for embedding and tests).
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    providers = _load_entry_points(manager)
    for plugin, provider in extra:
        _register(manager, plugin, provider, providers)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"a plugin implements a hook that does not exist: {exc} (known hooks: transduce_components)"
        ) from None
    registry = Registry()
    for impl in manager.hook.transduce_components.get_hookimpls():
        provider = providers[impl.plugin_name]
        try:
            classes = impl.function()
        except Exception as exc:
            raise PluginError(f"plugin {provider} raised in transduce_components: {exc}") from exc
        if classes is None:
            classes = ()
        if not isinstance(classes, (list, tuple)):
            raise PluginError(
                f"{provider}: transduce_components must return a list of component classes, got {classes!r}"
            )
        for cls in classes:
            registry.add(cls, provider)
    return registry
