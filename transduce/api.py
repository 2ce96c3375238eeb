"""The public plugin API: everything a plugin author imports.

The built-in plugins import only from this module, so they prove it suffices. A plugin that uses trained
models (a server, a command) opens them with `load` (the `transduce.load` of docs/python-api.md).
"""

from transduce._cli.commands import Command, CommandContext, add_output_option, add_set_option, add_threads_option
from transduce._data.textio import count_lines, read_lines, refuse_same_file, write_streamed
from transduce._model.model import Seq2Seq
from transduce._plugins.base import FinalReport
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
    Optimizer,
    Schedule,
    Score,
    SearchStrategy,
    Tokenizer,
    map_tensors,
)
from transduce._plugins.hookspecs import hookimpl
from transduce._plugins.params import REQUIRED, Param, ParamError
from transduce._reports.report import Report
from transduce._use.model import Model, ModelInfo, Result, Scored, load
from transduce.errors import DataError, TransduceError

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
    "Optimizer",
    "Param",
    "ParamError",
    "FinalReport",
    "Report",
    "Result",
    "Schedule",
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
