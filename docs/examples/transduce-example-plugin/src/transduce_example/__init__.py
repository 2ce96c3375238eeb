"""transduce-example-plugin: a GRU encoder, scaled dot-product attention, a Bahdanau decoder network and TER.

transduce loads this module through the entry point `example` (group
`transduce`, see pyproject.toml) and calls its `transduce_components` hook.
Like every plugin, it imports from transduce only `transduce.api`.
"""

from __future__ import annotations

from transduce.api import Component, hookimpl

from transduce_example.attention import ScaledDotScorer
from transduce_example.decoders import BahdanauDecoder
from transduce_example.encoders import GRUEncoder
from transduce_example.metrics import TranslationEditRate

__all__ = ["BahdanauDecoder", "GRUEncoder", "ScaledDotScorer", "TranslationEditRate"]


@hookimpl
def transduce_components() -> list[type[Component]]:
    return [GRUEncoder, ScaledDotScorer, BahdanauDecoder, TranslationEditRate]
