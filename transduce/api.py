"""The public plugin API: everything a plugin author imports.

The built-in plugins import only from this module, so they prove it suffices. A plugin that uses trained
models (a server, a command) opens them with `load` (the `transduce.load` of docs/python-api.md).
"""

from transduce.commands import Command, CommandContext, add_output_option, add_set_option, add_threads_option
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
from transduce.textio import count_lines, read_lines, refuse_same_file, write_streamed
from transduce.usage import Model, ModelInfo, Result, Scored, load

__all__ = [
    "MAX_OUTPUT_TOKENS",
    "REQUIRED",
    "SPLITS",
    "AttentionBuilder",
    "AttentionScorer",
    "Command",
    "CommandContext",
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
    "Model",
    "ModelInfo",
    "Param",
    "ParamError",
    "Report",
    "Result",
    "Score",
    "Scored",
    "SearchStrategy",
    "Seq2Seq",
    "Tokenizer",
    "TransduceError",
    "add_output_option",
    "add_set_option",
    "add_threads_option",
    "count_lines",
    "hookimpl",
    "load",
    "map_tensors",
    "read_lines",
    "refuse_same_file",
    "write_streamed",
]
