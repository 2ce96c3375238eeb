"""The component families and the contract of each.

A plugin provides subclasses of these bases and returns them from its
`transduce_components` hook. Each subclass sets `name` (unique in its family),
a docstring whose first line describes it, and `params`, its parameter
declarations. The core constructs a component with the recipe's validated
parameters as keyword arguments (plus the sizes named below for model parts).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import torch
from torch import nn

from transduce.params import Param

if TYPE_CHECKING:
    from transduce.model import Memory, Seq2Seq
    from transduce.report import Report

FAMILIES = ("tokenizer", "encoder", "attention", "decoder", "dataset", "metric", "logger")
SPLITS = ("train", "valid", "test")


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


# --- tokenizer ---------------------------------------------------------------


class Tokenizer(Component):
    """Splits text into tokens and joins tokens back into text.

    Contract: `detokenize(tokenize(text))` gives back `text` up to the
    normalisation the tokenizer documents.

    A tokenizer that learns from data (e.g. subwords) overrides `fit` and
    `load`. When a run starts, the core calls `fit` once with the training
    split's texts of the tokenizer's side and an empty directory inside the
    run directory; whenever the run is reopened (resume, evaluate, translate)
    it calls `load` with that directory instead. `tokenize` is called only
    after one of the two.
    """

    family: ClassVar[str] = "tokenizer"

    def fit(self, texts: Iterable[str], directory: Path) -> None:
        """Learn from `texts` (one pass, streamed) and save what was learned under `directory`."""

    def load(self, directory: Path) -> None:
        """Restore what `fit` saved under `directory`."""

    def tokenize(self, text: str) -> list[str]:
        raise NotImplementedError

    def detokenize(self, tokens: Sequence[str]) -> str:
        raise NotImplementedError


# --- encoder -----------------------------------------------------------------


class EncoderOutput(NamedTuple):
    """What an encoder returns.

    states: (batch, src_len, output_size); positions past a sequence's length
        may hold anything, the core masks them.
    final: (h, c), each (layers, batch, output_size): the last state of every
        layer, both directions already combined, used to start the decoder.
    """

    states: torch.Tensor
    final: tuple[torch.Tensor, torch.Tensor]


class Encoder(Component, nn.Module):
    """Reads embedded source tokens.

    Constructed as `cls(input_size=E, **params)`; must set `output_size` and
    `layers`. `forward(embedded (batch, src_len, E), lengths (batch,) int64 on
    the CPU) -> EncoderOutput`.
    """

    family: ClassVar[str] = "encoder"
    output_size: int
    layers: int

    def __init__(self) -> None:
        nn.Module.__init__(self)


# --- attention ---------------------------------------------------------------


class AttentionScorer(Component, nn.Module):
    """Scores every encoder state against every decoder state.

    Constructed as `cls(query_size=Q, key_size=K, **params)`. The core calls
    `prepare(keys)` once per batch (precompute key projections there), then
    `score(query, prepared)` for all decoder positions at once in training or
    one position at a time in decoding. The core masks padding and applies the
    softmax; a scorer returns raw scores.
    """

    family: ClassVar[str] = "attention"

    def __init__(self) -> None:
        nn.Module.__init__(self)

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        """keys (batch, src_len, K) -> a tensor, batch first, that `score` accepts; default: keys."""
        return keys

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        """query (batch, tgt_len, Q), prepared -> scores (batch, tgt_len, src_len)."""
        raise NotImplementedError


# --- decoding strategy -------------------------------------------------------


@dataclass
class Hypotheses:
    """Output of a decoding strategy, one entry per input sentence (in the batch's order).

    tokens: target indices without `<s>` and `</s>`.
    attention: optional (rows, src_len) weights for each sentence: one row per output token, plus a last
        row for `</s>` when the hypothesis ended with it (not when it was cut at the length limit).
    scores: optional raw log-probability (natural log) of each sentence's tokens, plus `</s>` when it
        ended with it, under the model (no length penalty).
    nbest: optional, for each sentence its candidates best first, as a Hypotheses whose `tokens`,
        `scores` (and `attention`) list them; the first candidate is the one in `tokens`.

    Only `tokens` is required: a strategy that returns nothing else still works everywhere.
    """

    tokens: list[list[int]]
    attention: list[torch.Tensor] | None = None
    scores: list[float] | None = None
    nbest: list[Hypotheses] | None = None


#: The longest output a decoding strategy should be asked for: the built-in ones bound max_length by it, and
#: training drops longer targets unless the recipe's target.max_length says otherwise.
MAX_OUTPUT_TOKENS = 4096


class DecodingStrategy(Component):
    """Turns a trained model into output sequences.

    Constructed as `cls(**params)`. `decode(model, memory)` may use only the
    model's decoding interface: `model.start(memory)` (initial state),
    `model.step(tokens, state, memory)` (logits, next state and attention for
    one position of every row), `model.bos_index`, `model.eos_index`,
    `memory.batch_size`, `memory.mask` (True on real source tokens, so
    `memory.mask.sum(1)` gives the source lengths) and `memory.select(rows)`
    (to repeat or reorder sentences, e.g. one row per beam). It runs under
    `torch.inference_mode()` and returns one hypothesis per sentence, in order.

    It must stop: declare a `max_length` Param and emit at most that many
    tokens per sentence, even from a model that never predicts `</s>`.
    `output_limits` gives the per-sentence limit of the built-in strategies,
    which also bounds the output relative to the source length.
    """

    family: ClassVar[str] = "decoder"

    def decode(self, model: Seq2Seq, memory: Memory) -> Hypotheses:
        raise NotImplementedError

    def rows_per_sentence(self) -> int:
        """Model rows one sentence occupies while decoded (a beam's size); the Translator budgets memory by it."""
        return 1

    def most_output_tokens(self, source_length: int) -> int:
        """The most tokens decoded for a source of `source_length` tokens, for the Translator's memory budget.
        By default the strategy's `max_length` attribute (MAX_OUTPUT_TOKENS when it keeps none)."""
        return int(getattr(self, "max_length", MAX_OUTPUT_TOKENS))

    @staticmethod
    def output_limits(memory: Memory, max_length: int, max_ratio: float | None, max_offset: int) -> torch.Tensor:
        """Most output tokens per sentence, (batch,) int64 on the memory's device:
        min(max_length, ceil(max_ratio * source length) + max_offset); max_ratio None: max_length alone."""
        lengths = memory.mask.sum(1)
        if max_ratio is None:
            return torch.full_like(lengths, max_length)
        # The small epsilon keeps e.g. 1.1 * 10 at 11 despite binary floating point.
        relative = torch.ceil(lengths.double() * max_ratio - 1e-9) + min(max_offset, max_length)
        return relative.clamp(max=max_length).long()  # clamped first: a huge ratio cannot overflow int64


# --- data source -------------------------------------------------------------


class Example(NamedTuple):
    """One source/target pair of raw text."""

    source: str
    target: str


class DataSource(Component):
    """Provides raw text pairs for the train, valid and test splits.

    Constructed as `cls(**params)`. `split(name)` returns the examples of one
    of SPLITS; `read_file(path)` those of a file in this source's format (used
    by `transduce evaluate --data FILE`). Both are deterministic for the same
    parameters, and may return a generator: the core iterates the train split
    a few times (tokenizer training, vocabularies, indexing), calling
    `split("train")` anew each time, so a large corpus is streamed, never
    held in memory in several copies.

    Problems met while reading (e.g. skipped bad rows, with file and line)
    are reported through `notes()`, which the core shows when the data has
    been read and keeps in the run's data summary.
    """

    family: ClassVar[str] = "dataset"

    def notes(self) -> list[str]:
        """Human-readable lines about the data read so far; default: none."""
        return []

    def split(self, name: str) -> Iterable[Example]:
        raise NotImplementedError

    def read_file(self, path: Path) -> Iterable[Example]:
        raise NotImplementedError


# --- metric ------------------------------------------------------------------


@dataclass
class Score:
    """A metric's result: a value on a 0-100 scale and an optional signature."""

    name: str
    value: float
    signature: str | None = None
    extra: dict[str, float] = field(default_factory=dict)


class Metric(Component):
    """Scores detokenized hypotheses against raw references.

    Constructed as `cls(**params)`; `compute(hypotheses, references) -> Score`
    with `value` on a 0-100 scale. `higher_is_better` tells early stopping
    which way is up.
    """

    family: ClassVar[str] = "metric"
    higher_is_better: ClassVar[bool] = True

    def compute(self, hypotheses: Sequence[str], references: Sequence[str]) -> Score:
        raise NotImplementedError


# --- logger ------------------------------------------------------------------


class Logger(Component):
    """Observes a training run: progress lines, event files, dashboards.

    Constructed as `cls(**params)`; a recipe selects loggers by name in its
    `loggers:` list. The trainer calls, in this order: `run_start` once (also
    on resume, before the data is read), then per epoch `validation_end` (when
    the epoch was validated), `checkpoint_saved(path, "best")` (when it
    improved, or every epoch when there is no valid split), `checkpoint_saved(path, "last")` and `epoch_end` with the
    epoch's record; finally `evaluation_end` and `run_end` with the final
    report, or `run_failed` with the error that stopped a started run. Every method is a no-op by default:
    override the ones you need (the others cost nothing). A logger must not
    change what it receives; one that raises is disabled for the rest of the
    run with a warning, and training goes on.
    """

    family: ClassVar[str] = "logger"

    def run_start(self, recipe: dict[str, Any], run_dir: Path) -> None:
        """The resolved recipe and the run directory, before the first epoch."""

    def epoch_end(self, record: dict[str, Any]) -> None:
        """`record`: epoch, step, loss, tokens_per_second, seconds; `valid` and `best` when validated."""

    def validation_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Validation scores after `epoch`, metric name -> 0-100."""

    def checkpoint_saved(self, path: Path, kind: str) -> None:
        """A checkpoint was written at `path`; `kind` is "last" or "best"."""

    def evaluation_end(self, report: Report) -> None:
        """The final report on the evaluation split."""

    def run_end(self, report: Report) -> None:
        """The run finished; its report is written."""

    def run_failed(self, error: BaseException) -> None:
        """The run stopped on `error`."""


BASES: dict[str, type[Component]] = {
    "tokenizer": Tokenizer,
    "encoder": Encoder,
    "attention": AttentionScorer,
    "decoder": DecodingStrategy,
    "dataset": DataSource,
    "metric": Metric,
    "logger": Logger,
}
