"""Where a recipe names components, and of which family: declared once, read by validation, assembly,
provenance, the conformance kit and the reference pages.

A position is fixed by the core (`POSITIONS`), or nested: a component's own parameter that names a
component of another family (`Param(..., family=...)`), such as the `lstm` decoder network's `attention`,
which a recipe gives at `model.decoder.attention`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: positions are plain data
    from transduce._plugins.registry import Registry

Path_ = tuple[str, ...]


@dataclass(frozen=True)
class Position:
    """A place in a recipe that names a component (or, `many`, a list of them) of `family`.

    default: the name used when the recipe omits the place (a tuple of names for a list); None: required.
    """

    path: Path_
    family: str
    default: str | tuple[str, ...] | None
    many: bool = False

    @property
    def key(self) -> str:
        return ".".join(self.path)


POSITIONS = (
    Position(("data",), "dataset", None),
    Position(("source", "tokenizer"), "tokenizer", "char"),
    Position(("target", "tokenizer"), "tokenizer", "char"),
    Position(("model", "encoder"), "encoder", "lstm"),
    Position(("model", "decoder"), "decoder", "lstm"),
    Position(("train", "optimizer"), "optimizer", "adam"),
    Position(("train", "schedule"), "schedule", "plateau"),
    Position(("search",), "search", "greedy"),
    Position(("evaluate", "metrics"), "metric", ("exact_match", "bleu", "chrf"), many=True),
    Position(("evaluate", "compare"), "search", (), many=True),
    Position(("loggers",), "logger", ("console",), many=True),
)

BY_PATH: dict[Path_, Position] = {position.path: position for position in POSITIONS}


def at(*path: str) -> Position:
    """The fixed position at `path`, e.g. at("model", "encoder")."""
    return BY_PATH[path]


def nested(registry: Registry, family_filter: str | None = None) -> Iterator[tuple[Position, str]]:
    """(position, owner component name) for every component-valued parameter of the components that single
    fixed positions may name, e.g. (model.decoder.attention, 'lstm')."""
    for position in POSITIONS:
        if position.many:
            continue
        for name in registry.names(position.family):
            info = registry.get(position.family, name)
            for param in info.params if info is not None else ():
                if param.family is not None and family_filter in (None, param.family):
                    default = None if param.default is None else str(param.default)
                    yield Position((*position.path, param.name), param.family, default), name


def is_single(path: Path_) -> bool:
    """Whether a recipe names one component at `path` (a fixed position, or a parameter of one that may name
    a component: only a component's name can be a text value that a --set goes below)."""
    position = BY_PATH.get(path)
    return (position is not None and not position.many) or (len(path) > 1 and is_single(path[:-1]))


def specs(recipe: Mapping[str, Any], registry: Registry) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(family, spec, recipe key) of every component a resolved recipe names, nested ones included."""
    for position in POSITIONS:
        value: Any = recipe
        for part in position.path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            continue
        entries = (
            [(f"{position.key}.{i}", spec) for i, spec in enumerate(value)]
            if position.many
            else [(position.key, value)]
        )
        for key, spec in entries:
            yield from _with_nested(position.family, spec, key, registry)


def _with_nested(family: str, spec: dict[str, Any], key: str, registry: Registry) -> Iterator[tuple[str, dict, str]]:
    yield family, spec, key
    info = registry.get(family, spec["name"])
    for param in info.params if info is not None else ():
        value = spec.get(param.name)
        if param.family is not None and isinstance(value, Mapping):
            yield from _with_nested(param.family, dict(value), f"{key}.{param.name}", registry)
