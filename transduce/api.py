"""The public plugin API: everything a plugin author imports.

The built-in plugins import only from this module, so they prove it suffices.
"""

from transduce.components import (
    MAX_OUTPUT_TOKENS,
    SPLITS,
    AttentionScorer,
    Component,
    DataSource,
    DecodingStrategy,
    Encoder,
    EncoderOutput,
    Example,
    Hypotheses,
    Logger,
    Metric,
    Score,
    Tokenizer,
)
from transduce.errors import DataError, TransduceError
from transduce.hookspecs import hookimpl
from transduce.model import Memory, Seq2Seq
from transduce.params import REQUIRED, Param
from transduce.report import Report

__all__ = [
    "MAX_OUTPUT_TOKENS",
    "REQUIRED",
    "SPLITS",
    "AttentionScorer",
    "Component",
    "DataError",
    "DataSource",
    "DecodingStrategy",
    "Encoder",
    "EncoderOutput",
    "Example",
    "Hypotheses",
    "Logger",
    "Memory",
    "Metric",
    "Param",
    "Report",
    "Score",
    "Seq2Seq",
    "Tokenizer",
    "TransduceError",
    "hookimpl",
]
