"""Copies derived from a module's weights (reduced-precision matrices for decoding), kept until a weight changes.

Shared by the built-in `lstm` encoder and decoder network: translating batch after batch then pays the copying
(quantizing, for int8: 10-30 ms with an 8,000-token vocabulary) once, while validation between epochs copies the
current weights.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from torch import nn

T = TypeVar("T")


class KeptCopies(Generic[T]):
    """The last copies made of a module's weights, with what they were made of.

    A weight changes its storage (data_ptr) or, in place (an optimizer step, load_state_dict), its version
    counter; weights made in inference mode have none, so their copies are made every time.
    """

    def __init__(self) -> None:
        self._kept: tuple[Hashable, T] | None = None

    def get(self, module: nn.Module, make: Callable[[], T], kind: Hashable = None) -> T:
        """`make()`'s copies of `module`'s weights (of this `kind`, e.g. a dtype), made again only when needed."""
        weights = list(module.parameters())
        if any(weight.is_inference() for weight in weights):
            return make()
        key = (kind, tuple((weight.data_ptr(), weight._version) for weight in weights))
        if self._kept is None or self._kept[0] != key:
            self._kept = None  # the old copies go before the new ones are made
            self._kept = (key, make())
        return self._kept[1]
