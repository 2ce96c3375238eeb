"""The public plugin API: everything a plugin author imports.

The built-in plugins import only from this module, so they prove it suffices.
"""

from transduce._model.model import Seq2Seq
from transduce._plugins.contracts import (
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
    Score,
    SearchStrategy,
    Tokenizer,
    map_tensors,
)
from transduce._plugins.hookspecs import hookimpl
from transduce._plugins.params import REQUIRED, Param, ParamError
from transduce._reports.report import Report
from transduce.errors import DataError, TransduceError

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
    "Param",
    "ParamError",
    "Report",
    "Score",
    "SearchStrategy",
    "Seq2Seq",
    "Tokenizer",
    "TransduceError",
    "hookimpl",
    "map_tensors",
]
