"""What every component class and the hook specifications share: the component base, a metric's score and the
final report's shape. Below both, so the hook specs can name them and the contracts can build on the specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from transduce._plugins.params import Param


class Component:
    """Common declarations of every component class."""

    family: ClassVar[str]
    name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()

    @classmethod
    def description(cls) -> str:
        """First line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


@dataclass
class Score:
    """A metric's result: a value on a 0-100 scale and an optional signature."""

    name: str
    value: float
    signature: str | None = None
    extra: dict[str, float] = field(default_factory=dict)


class FinalReport(Protocol):
    """What a logger (or a lifecycle hook) may read of a run's final report: the core's `Report`
    (transduce.api.Report) provides it. Declared here, so neither the contracts nor the hook specs need know
    the reporting stage."""

    split: str
    size: int
    scores: list[Score]

    def metrics(self) -> dict[str, float]: ...

    def as_dict(self) -> dict[str, Any]: ...
