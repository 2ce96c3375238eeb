"""The public plugin API: everything a plugin author imports.

The built-in plugins import only from this module, so they prove it suffices.
"""

from transduce.components import (
    MAX_OUTPUT_TOKENS,
    SPLITS,
    AttentionBuilder,
    AttentionScorer,
    Component,
    DataSource,
    Decodable,
    DecoderNetwork,
    DecodingStrategy,
    Encoder,
    EncoderOutput,
    Example,
    Hypotheses,
    Logger,
    Memory,
    Metric,
    Optimizer,
    Schedule,
    Score,
    SearchStrategy,
    Tokenizer,
    map_tensors,
)
from transduce.errors import DataError, TransduceError
from transduce.hookspecs import hookimpl
from transduce.model import Seq2Seq
from transduce.params import REQUIRED, Param, ParamError
from transduce.report import Report

__all__ = [
    "MAX_OUTPUT_TOKENS",
    "REQUIRED",
    "SPLITS",
    "AttentionBuilder",
    "AttentionScorer",
    "Component",
    "DataError",
    "DataSource",
    "Decodable",
    "DecoderNetwork",
    "DecodingStrategy",
    "Encoder",
    "EncoderOutput",
    "Example",
    "Hypotheses",
    "Logger",
    "Memory",
    "Metric",
    "Optimizer",
    "Param",
    "ParamError",
    "Report",
    "Schedule",
    "Score",
    "SearchStrategy",
    "Seq2Seq",
    "Tokenizer",
    "TransduceError",
    "hookimpl",
    "map_tensors",
]
