"""The component registry: finds plugins through entry points and indexes their components.

Built-in and third-party plugins are found the same way, through the
entry-point group `transduce`. Every component class is recorded with the
distribution that provides it, so messages and listings can name it.

One broken plugin must not take the toolkit down: `discover()` records every
problem (a plugin that fails to import, a hook that raises, an invalid class,
a name clash, a misspelled hook, a hook function not marked `@hookimpl`) in
`Registry.broken` and loads everything else. A recipe that names a component a broken plugin was meant to provide
fails at validation with that plugin's problem. `discover(strict=True)` raises
the first problem instead, for plugin authors' tests.
"""

from __future__ import annotations

import importlib.metadata as metadata
import inspect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pluggy

from transduce._plugins import hookspecs
from transduce._plugins.contracts import BASES, FAMILIES, Component
from transduce._plugins.params import Param, did_you_mean
from transduce.errors import PluginError

ENTRY_POINT_GROUP = "transduce"
BUILTIN_DISTRIBUTION = "transduce"


@dataclass(frozen=True)
class Provider:
    """Where a plugin comes from: its distribution, version and entry point."""

    distribution: str
    version: str
    entry_point: str

    def __str__(self) -> str:
        return f"{self.distribution} {self.version} (entry point {self.entry_point!r})"

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION


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
    """A plugin that could not be loaded, or a component of it that was refused, and why.

    `problem` says what went wrong without repeating the provider; `str()` gives both.
    """

    provider: Provider
    problem: str

    def __str__(self) -> str:
        return f"plugin {self.provider}: {self.problem}"


class Registry:
    """Components by family and name, the plugins that failed to load, and the hooks of those that did."""

    def __init__(self, plugins: pluggy.PluginManager | None = None) -> None:
        self._components: dict[str, dict[str, ComponentInfo]] = {f: {} for f in FAMILIES}
        self._clashes: dict[tuple[str, str], list[Provider]] = {}
        self._refused: dict[tuple[str, str], BrokenPlugin] = {}
        self.broken: list[BrokenPlugin] = []
        self._opaque: list[BrokenPlugin] = []
        #: The pluggy manager holding every loaded plugin: lifecycle hooks are called through it.
        self.plugins = plugins if plugins is not None else new_plugin_manager()
        #: pluggy plugin name -> where that plugin comes from.
        self.providers: dict[str, Provider] = {}

    # --- adding ------------------------------------------------------------------

    def add(self, cls: object, provider: Provider) -> ComponentInfo:
        """Register one component class; an invalid class or a name taken in its family raises PluginError."""
        problem = _invalid(cls)
        if problem is not None:
            raise PluginError(str(BrokenPlugin(provider, problem)))
        info = ComponentInfo(family=cls.family, name=cls.name, cls=cls, provider=provider)  # type: ignore[union-attr]
        key = (info.family, info.name)
        taken = self._components[info.family].get(info.name)
        if taken is not None or key in self._clashes:
            others = [taken.provider] if taken is not None else self._clashes[key]
            raise PluginError(_clash_message(info.family, info.name, [*others, provider]))
        self._components[info.family][info.name] = info
        return info

    def admit(self, cls: object, provider: Provider) -> ComponentInfo | None:
        """Register one component class, recording (not raising) why it is refused.

        Clash rule: a built-in keeps its name and a third-party class claiming
        it is refused (a plugin can neither hijack nor disable a built-in);
        two third-party classes with one name both lose it, because which one
        would win depends on installation order: a recipe naming it fails with
        both distributions named.
        """
        problem = _invalid(cls)
        if problem is not None:
            self._refuse(cls, provider, problem)
            return None
        info = ComponentInfo(family=cls.family, name=cls.name, cls=cls, provider=provider)  # type: ignore[union-attr]
        key = (info.family, info.name)
        if key in self._clashes:
            self._clashes[key].append(provider)
            self.record(provider, _clash_message(info.family, info.name, self._clashes[key]))
            return None
        taken = self._components[info.family].get(info.name)
        if taken is None:
            self._components[info.family][info.name] = info
            return info
        if taken.provider.builtin != provider.builtin:
            keep, refuse = (taken, info) if taken.provider.builtin else (info, taken)
            self._components[info.family][info.name] = keep
            self.record(
                refuse.provider,
                f"{info.family} {info.name!r} ({refuse.cls.__qualname__}) is refused: the built-in "
                f"{keep.provider} already provides that name. Rename the component in the plugin.",
            )
            return keep if keep is info else None
        del self._components[info.family][info.name]
        self._clashes[key] = [taken.provider, provider]
        for each in self._clashes[key]:
            self.record(each, _clash_message(info.family, info.name, self._clashes[key]))
        return None

    def record(self, provider: Provider, problem: str, *, declared_nothing: bool = False) -> BrokenPlugin:
        """Note a problem of one plugin; it stays in `broken` for listings and messages.

        `declared_nothing`: the plugin broke before saying which components it provides (it failed to
        import, or its hook raised), so a recipe naming an unknown component may have meant one of its.
        """
        broken = BrokenPlugin(provider, problem)
        self.broken.append(broken)
        if declared_nothing:
            self._opaque.append(broken)
        return broken

    def _refuse(self, cls: object, provider: Provider, problem: str) -> None:
        broken = self.record(provider, problem)
        family, name = getattr(cls, "family", None), getattr(cls, "name", None)
        if family in FAMILIES and isinstance(name, str) and name:
            self._refused.setdefault((family, name), broken)

    # --- looking up --------------------------------------------------------------

    def get(self, family: str, name: str) -> ComponentInfo | None:
        return self._components[family].get(name)

    def names(self, family: str) -> list[str]:
        return sorted(self._components[family])

    def problem(self, family: str, name: str) -> str | None:
        """Why `name` cannot be used although a plugin declared it (a clash, a refused class), or None."""
        if self.get(family, name) is not None:
            return None
        if (family, name) in self._clashes:
            return _clash_message(family, name, self._clashes[(family, name)])
        refused = self._refused.get((family, name))
        if refused is not None:
            return f"{family} {name!r} cannot be used: its plugin {refused.provider} is broken: {refused.problem}"
        return None

    def unknown_name_message(self, family: str, name: object) -> str:
        """Why `name` is not a usable component of `family`, with a did-you-mean and the alternatives.

        A name a broken plugin declared gets that plugin's problem; otherwise, plugins that broke before
        declaring anything (import failures, raising hooks) are mentioned as possible providers.
        """
        names = self.names(family)
        listing = ", ".join(names) if names else "none installed"
        known = self.problem(family, name) if isinstance(name, str) else None
        if known is not None:
            return f"{known} (available: {listing})"
        message = f"unknown {family} {name!r}{did_you_mean(str(name), names)} (available: {listing})"
        if self._opaque:
            message += ". These plugins failed to load and may provide it: " + "; ".join(map(str, self._opaque))
        return message

    def __iter__(self) -> Iterator[ComponentInfo]:
        for family in FAMILIES:
            for name in sorted(self._components[family]):
                yield self._components[family][name]


def _clash_message(family: str, name: str, providers: list[Provider]) -> str:
    listing = " and ".join(str(p) for p in providers)
    return (
        f"{family} {name!r} is registered twice: by {listing}; neither may be used until all but one "
        "of these distributions are uninstalled (or a plugin renames its component)"
    )


def _invalid(cls: object) -> str | None:
    """Why `cls` is not a valid component class, or None."""
    if not isinstance(cls, type) or not issubclass(cls, Component):
        return (
            f"returned {cls!r} from transduce_components; expected a subclass "
            f"of one of transduce.api's bases ({', '.join(b.__name__ for b in BASES.values())})"
        )
    family = getattr(cls, "family", None)
    if family not in BASES or not issubclass(cls, BASES[family]):
        return f"{cls.__qualname__} does not subclass a family base of transduce.api"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        return f"{cls.__qualname__} must set a non-empty string `name`"
    params = getattr(cls, "params", ())
    if not isinstance(params, (tuple, list)) or not all(isinstance(p, Param) for p in params):
        return f"{cls.__qualname__}.params must hold only transduce.api.Param objects"
    if disagreements := default_disagreements(cls):
        return "; ".join(disagreements)
    return None


def default_disagreements(cls: type[Component]) -> list[str]:
    """Where the constructor states a default for a declared parameter other than its `Param`'s.

    The `Param` is a parameter's one declaration: the core always passes every declared parameter, so
    `__init__` needs no defaults at all. Where it repeats one (handy for building the class directly),
    it must say the same, or the class would behave one way from a recipe and another from Python.
    """
    stated = constructor_defaults(cls)
    problems = []
    for param in cls.params:
        if param.name not in stated:
            continue
        default = stated[param.name]
        if param.required:
            problems.append(
                f"{cls.__qualname__}.__init__ gives {param.name!r} the default {default!r}, but its Param "
                "declares it required: remove the default from __init__ (the core always passes it)"
            )
        elif not _same_value(default, param.default):
            problems.append(
                f"{cls.__qualname__}.__init__ gives {param.name!r} the default {default!r}, but its Param "
                f"declares {param.default!r}: the Param is the declaration, so drop the default from __init__ "
                "or make it equal"
            )
    return problems


def constructor_defaults(cls: type) -> dict[str, Any]:
    """Keyword defaults of `cls.__init__`, following `**kwargs` into the base classes' constructors."""
    defaults: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):  # a constructor in C has no signature to compare
            return defaults
        for p in parameters:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty:
                defaults.setdefault(p.name, p.default)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return defaults  # what this constructor does not pass on, no base receives
    return defaults


def _same_value(stated: object, declared: object) -> bool:
    """Equal and of the same kind (True is not 1, 1 may stand for 1.0)."""
    try:
        return bool(stated == declared) and isinstance(stated, bool) == isinstance(declared, bool)
    except Exception:  # e.g. an array, whose == gives no single answer
        return False


# --- discovery -----------------------------------------------------------------


def new_plugin_manager() -> pluggy.PluginManager:
    """A pluggy manager that knows every transduce hook specification."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def hook_names() -> list[str]:
    """The names of every hook a plugin may implement."""
    marker = f"{hookspecs.PROJECT}_spec"
    return sorted(name for name, obj in vars(hookspecs).items() if hasattr(obj, marker))


class _Discovery:
    """One discovery pass: records each problem in the registry, or raises it when strict."""

    def __init__(self, registry: Registry, strict: bool) -> None:
        self.registry, self.strict = registry, strict

    def problem(
        self, provider: Provider, problem: str, cause: BaseException | None = None, *, declared_nothing: bool = False
    ) -> None:
        if self.strict:
            raise PluginError(str(BrokenPlugin(provider, problem))) from cause
        self.registry.record(provider, problem, declared_nothing=declared_nothing)

    def load_entry_points(self) -> None:
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = entry_point.dist
            provider = Provider(
                distribution=dist.name if dist else "unknown",
                version=dist.version if dist else "?",
                entry_point=entry_point.name,
            )
            try:
                plugin = entry_point.load()
            except (Exception, SystemExit) as exc:  # any failure inside third-party code
                self.problem(provider, f"failed to import: {type(exc).__name__}: {exc}", exc, declared_nothing=True)
                continue
            self.register(plugin, provider)

    def register(self, plugin: object, provider: Provider) -> None:
        """Add one plugin object's hooks; a malformed hook or a module registered twice is a problem."""
        manager, key = self.registry.plugins, f"{provider.distribution}:{provider.entry_point}"
        already = manager.get_name(plugin)
        if already is not None:
            first = self.registry.providers[already]
            self.problem(
                provider,
                f"cannot be registered: it names the plugin already loaded through {first}; "
                "remove one of the two entry points",
                declared_nothing=True,
            )
            return
        try:
            manager.register(plugin, name=key)
        except (pluggy.PluginValidationError, ValueError) as exc:
            detail = " ".join(str(exc).split())
            self.problem(provider, f"cannot be registered: {detail}", exc, declared_nothing=True)
            return
        self.registry.providers[key] = provider
        self.check_unmarked(plugin, provider)

    def check_unmarked(self, plugin: object, provider: Provider) -> None:
        """A function named like a hook but not marked `@hookimpl` is never called: pluggy registers only marked
        functions, so a forgotten marker would otherwise show only as "unknown metric" far from its cause."""
        manager, known = self.registry.plugins, hook_names()
        unmarked = [name for name in _hook_like_functions(plugin) if manager.parse_hookimpl_opts(plugin, name) is None]
        if not manager.get_hookcallers(plugin):
            why = (
                f": did you forget @hookimpl on {' and '.join(unmarked)}?"
                if unmarked
                else f"; mark its hook functions with @hookimpl (known hooks: {', '.join(known)})"
            )
            self.problem(provider, f"implements no transduce hook{why}", declared_nothing=True)
            return
        meant = [name for name in unmarked if name in known or _close_to_a_hook(name, known)]
        if meant:
            unknown = [name for name in meant if name not in known]
            check = f"; check the name of {' and '.join(unknown)} (known hooks: {', '.join(known)})" if unknown else ""
            self.problem(
                provider,
                f"defines {' and '.join(meant)} without @hookimpl, so pluggy never calls it: add @hookimpl{check}",
                declared_nothing="transduce_components" in meant,
            )

    def check_hook_names(self) -> None:
        """A function marked as a hook whose name no specification has is a (probably misspelled) problem."""
        known = hook_names()
        for name, caller in list(vars(self.registry.plugins.hook).items()):
            if name.startswith("_") or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if not impl.optionalhook:
                    self.problem(
                        self.registry.providers[impl.plugin_name],
                        f"implements hook {name!r}, which does not exist{did_you_mean(name, known)} "
                        f"(known hooks: {', '.join(known)})",
                    )

    def collect_components(self) -> None:
        manager = self.registry.plugins
        for impl in manager.hook.transduce_components.get_hookimpls():
            provider = self.registry.providers[impl.plugin_name]
            try:
                classes = impl.function()
            except Exception as exc:
                manager.unregister(name=impl.plugin_name)  # its other hooks may rely on what failed
                self.problem(
                    provider, f"raised in transduce_components: {type(exc).__name__}: {exc}", exc, declared_nothing=True
                )
                continue
            if classes is None:
                classes = ()
            if not isinstance(classes, (list, tuple)):
                self.problem(
                    provider,
                    f"returned {classes!r} from transduce_components; it must return a list of component classes",
                    declared_nothing=True,
                )
                continue
            for cls in classes:
                if self.strict:
                    self.registry.add(cls, provider)
                else:
                    self.registry.admit(cls, provider)


def _close_to_a_hook(name: str, known: list[str]) -> bool:
    """Whether `name` looks like a misspelled hook; the shared `transduce_` prefix is not counted as likeness."""
    cut = len(hookspecs.PROJECT) + 1
    return bool(did_you_mean(name[cut:], [hook[cut:] for hook in known]))


def _hook_like_functions(plugin: object) -> list[str]:
    """Names of the plugin's functions that start like a hook (`transduce_`)."""
    prefix = f"{hookspecs.PROJECT}_"
    names = []
    for name in dir(plugin):
        if name.startswith(prefix):
            value = inspect.getattr_static(plugin, name, None)
            if inspect.isroutine(value) or isinstance(value, (staticmethod, classmethod)):
                names.append(name)
    return names


def discover(extra: Iterable[tuple[object, Provider]] = (), *, strict: bool = False) -> Registry:
    """Load every plugin of the `transduce` entry-point group into a new registry.

    Problems are recorded in `registry.broken` and everything else still loads;
    `strict=True` raises the first problem as a PluginError instead (for plugin
    authors' tests). `extra` adds plugin objects that are not installed (for
    embedding and tests).
    """
    discovery = _Discovery(Registry(), strict)
    discovery.load_entry_points()
    for plugin, provider in extra:
        discovery.register(plugin, provider)
    discovery.check_hook_names()
    discovery.collect_components()
    return discovery.registry
