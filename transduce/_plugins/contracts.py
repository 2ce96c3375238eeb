"""The component families and the contract of each.

A plugin provides subclasses of these bases and returns them from its
`transduce_components` hook. Each subclass sets `name` (unique in its family),
a docstring whose first line describes it, and `params`, its parameter
declarations. The core constructs a component with the recipe's validated
parameters as keyword arguments (plus the sizes named below for model parts).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

import torch
from torch import nn

from transduce._plugins import hookspecs
from transduce._plugins.base import Component, Score

FAMILIES = (
    "tokenizer",
    "encoder",
    "attention",
    "decoder",
    "search",
    "dataset",
    "metric",
    "logger",
    "optimizer",
    "schedule",
)
SPLITS = ("train", "valid", "test")


def map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], structure: Any) -> Any:
    """`structure` (a tensor, None, or tuples, named tuples, lists and dicts of them) with `fn` applied to every
    tensor: how the core reorders states and memories whose layout it does not know."""
    if isinstance(structure, torch.Tensor):
        return fn(structure)
    if isinstance(structure, tuple) and hasattr(structure, "_fields"):
        return type(structure)(*(map_tensors(fn, item) for item in structure))
    if isinstance(structure, (tuple, list)):
        return type(structure)(map_tensors(fn, item) for item in structure)
    if isinstance(structure, dict):
        return {key: map_tensors(fn, value) for key, value in structure.items()}
    return structure


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
    final: the encoder's last state, which a decoder network may start from: a
        tensor or a structure of tensors (e.g. an LSTM's (h, c)), each
        (layers, batch, output_size), both directions already combined; or None
        for an encoder that has no final state (a convolutional or Transformer
        encoder). The built-in decoder reads a tensor as h and a tuple as (h, c).
    """

    states: torch.Tensor
    final: Any = None


class ReducedProducts:
    """What the encoder and the decoder network share: decoding on the CPU in a reduced precision."""

    @contextmanager
    def reduced_products(self, dtype: torch.dtype) -> Iterator[None]:
        """Within: decoding may multiply in `dtype` (the CPU's bfloat16 and int8 decoding paths, torch.bfloat16 and
        torch.int8) or in any dtype faster than float32 that keeps the stated accuracy; default: unchanged."""
        yield


class Encoder(Component, ReducedProducts, nn.Module):
    """Reads embedded source tokens.

    Constructed as `cls(input_size=E, **params)`; must set `output_size` and
    `layers` (the layers of `final`; any positive number when there is none).
    `forward(embedded (batch, src_len, E), lengths (batch,) int64 on the CPU)
    -> EncoderOutput`.
    """

    family: ClassVar[str] = "encoder"
    output_size: int
    layers: int

    def __init__(self) -> None:
        nn.Module.__init__(self)


# --- attention ---------------------------------------------------------------


class AttentionScorer(Component, nn.Module):
    """Scores every encoder state against every decoder state.

    Constructed as `cls(query_size=Q, key_size=K, **params)` by the decoder
    network that uses it (the built-in `lstm` passes its hidden size as Q and
    the encoder's output size as K). The network calls `prepare(keys)` once per
    batch (precompute key projections there), then `score(query, prepared)` for
    all decoder positions at once in training or one position at a time in
    decoding. The network masks padding and applies the softmax; a scorer
    returns raw scores.
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


# --- memory and decoder network ---------------------------------------------


@dataclass
class Memory:
    """The encoded source batch, as a decoder network reads it.

    states: (batch, src_len, K) encoder outputs, K = the encoder's output_size.
    mask: (batch, src_len) bool, True on real (non-padding) tokens.
    final: the encoder's last state (see EncoderOutput.final): tensors (layers, batch, K), or None.
    prepared: what the decoder network computed once per batch in `prepare` (e.g. attention keys), by name,
        each tensor batch first.
    """

    states: torch.Tensor
    mask: torch.Tensor
    final: Any = None
    prepared: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.states.size(0)

    def select(self, index: torch.Tensor) -> Memory:
        """Rows `index` (int64, on the memory's device) of every tensor, to reorder, drop or repeat sentences:
        dimension 0 of states, mask and prepared, dimension 1 of final's tensors."""
        return Memory(
            self.states.index_select(0, index),
            self.mask.index_select(0, index),
            map_tensors(lambda tensor: tensor.index_select(1, index), self.final),
            map_tensors(lambda tensor: tensor.index_select(0, index), self.prepared),
        )

    def with_prepared(self, **prepared: torch.Tensor) -> Memory:
        """This memory with `prepared` tensors added (batch first)."""
        return dataclasses.replace(self, prepared={**self.prepared, **prepared})


#: What a decoder network receives for a parameter that names an attention scorer: call it with the sizes.
AttentionBuilder = Callable[..., "AttentionScorer"]


class DecoderNetwork(Component, ReducedProducts, nn.Module):
    """The decoder network: target embeddings, the layers that read them with the encoded source, the output
    layer over the target vocabulary.

    Constructed as `cls(embedding_dim=E, vocab_size=V, memory_size=K, pad_index=P, **params)`, K being the
    encoder's output_size. A parameter declared with `Param(..., family="attention")` arrives as a builder:
    `attention(query_size=Q, key_size=K) -> AttentionScorer`, or None when the recipe says `none`.

    The core calls `prepare` once per batch, then `forward` (teacher forcing, training and scoring) or
    `start` and `step` (search strategies, one position at a time). Both paths must give the same logits.
    The state is the network's own business: search strategies never look inside it, they only pass it
    back to `step` and reorder its rows with `reorder_state`.
    """

    family: ClassVar[str] = "decoder"

    def __init__(self) -> None:
        nn.Module.__init__(self)

    def prepare(self, memory: Memory) -> Memory:
        """Per-batch precomputations (e.g. attention keys) stored with `memory.with_prepared`; default: none."""
        return memory

    def forward(self, target_in: torch.Tensor, memory: Memory, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: target_in (batch, tgt_len) int64, starting with `<s>` -> logits (batch, tgt_len, V).

        With `positions`, a (batch, tgt_len) bool mask (the real target tokens), only the logits there:
        (positions.sum(), V) in row-major order (the loss needs none at padding).
        """
        raise NotImplementedError

    def start(self, memory: Memory) -> Any:
        """The state before the first step, for memory.batch_size rows: any structure of tensors."""
        raise NotImplementedError

    def step(self, tokens: torch.Tensor, state: Any, memory: Memory) -> tuple[torch.Tensor, Any, torch.Tensor | None]:
        """One position: tokens (rows,) -> (logits (rows, V), next state, attention (rows, src_len) or None).

        rows is memory.batch_size or k times it: then k consecutive rows share a memory row (a beam's
        hypotheses), and the state has rows rows.
        """
        raise NotImplementedError

    def reorder_state(self, state: Any, index: torch.Tensor) -> Any:
        """The state's rows `index` (int64, (rows',)), in that order; rows may repeat (beams) or go (finished
        sentences). Default: dimension 0 of every tensor in the structure; override for another layout."""
        return map_tensors(lambda tensor: tensor.index_select(0, index), state)

    @contextmanager
    def restricted_output(self, candidates: torch.Tensor) -> Iterator[None]:
        """Within: `step` may give logits for the target tokens `candidates` (C,) only, in that order, each as
        the whole output layer gives it (a vocabulary shortlist: the output layer then multiplies by those rows
        alone); default: all V, of which the core takes the candidates' columns."""
        yield

    @property
    def product_dtype(self) -> torch.dtype:
        """The dtype `step` multiplies in now (see reduced_products): by default its parameters' own."""
        return next(self.parameters(), torch.empty(0)).dtype


class Decodable(Protocol):
    """What a search strategy may use of the model (the core's Seq2Seq provides it)."""

    bos_index: int
    eos_index: int

    def start(self, memory: Memory) -> Any: ...

    def step(
        self, tokens: torch.Tensor, state: Any, memory: Memory
    ) -> tuple[torch.Tensor, Any, torch.Tensor | None]: ...

    def reorder_state(self, state: Any, index: torch.Tensor) -> Any: ...


# --- search strategy ---------------------------------------------------------


@dataclass
class Hypotheses:
    """Output of a search strategy, one entry per input sentence (in the batch's order).

    tokens: target indices without `<s>` and `</s>`.
    attention: optional (rows, src_len) weights for each sentence: one row per output token, plus a last
        row for `</s>` when the hypothesis ended with it (not when it was cut at the length limit); None
        when the strategy or the decoder network (attention `none`) gives none.
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


#: The longest output a search strategy should be asked for: the built-in ones bound max_length by it, and
#: training drops longer targets unless the recipe's target.max_length says otherwise.
MAX_OUTPUT_TOKENS = 4096


class SearchStrategy(Component):
    """Turns a trained model into output sequences (greedy, beam search, sampling).

    Constructed as `cls(**params)`. `decode(model, memory)` may use only the
    model's decoding interface: `model.start(memory)` (initial state),
    `model.step(tokens, state, memory)` (logits, next state and attention, or
    None, for one position of every row), `model.reorder_state(state, index)`
    (rows of a state: never look inside one, its layout is the decoder
    network's), `model.bos_index`, `model.eos_index`, `memory.batch_size`,
    `memory.mask` (True on real source tokens, so `memory.mask.sum(1)` gives
    the source lengths) and `memory.select(rows)` (to reorder or drop
    sentences). It runs under `torch.inference_mode()` and returns one
    hypothesis per sentence, in order.

    It must stop: declare a `max_length` Param and emit at most that many
    tokens per sentence, even from a model that never predicts `</s>`.
    `output_limits` gives the per-sentence limit of the built-in strategies,
    which also bounds the output relative to the source length.
    """

    family: ClassVar[str] = "search"

    def decode(self, model: Decodable, memory: Memory) -> Hypotheses:
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


#: The name search strategies had before the decoder network became a family of its own; plugins that
#: subclass it are search strategies.
DecodingStrategy = SearchStrategy


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
    `loggers:` list. Its methods are the lifecycle events declared in
    `transduce/_plugins/hookspecs.py`, named without `transduce_` (`run_start(recipe,
    run_dir)` observes `transduce_run_start`), called in the order a run
    emits them with the hook's arguments by position, so a method may name
    its parameters as it likes. Each is a no-op here, made from its hook's
    spec: override the ones you need (the others cost nothing). A logger must
    not change what it receives; one that raises is disabled for the rest of
    the run with a warning, and training goes on.
    """

    family: ClassVar[str] = "logger"


def _no_op_method(event: hookspecs.Event) -> Callable[..., None]:
    """`Logger`'s method for one event: does nothing, and shows the hook's parameters and docstring."""

    def method(self: Logger, *args: Any, **kwargs: Any) -> None:
        return None

    spec = inspect.signature(event.spec)
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = spec.replace(parameters=[this, *spec.parameters.values()])  # type: ignore[attr-defined]
    method.__name__, method.__qualname__ = event.name, f"Logger.{event.name}"
    method.__doc__ = event.spec.__doc__
    return method


for _event in hookspecs.events().values():
    setattr(Logger, _event.name, _no_op_method(_event))


# --- optimizer ---------------------------------------------------------------


class Optimizer(Component):
    """Decides how training updates the weights: builds the `torch.optim.Optimizer` the trainer steps.

    Constructed as `cls(**params)`; a recipe names it at `train.optimizer`. The trainer calls
    `build(parameters, lr)` once per run (also when one is resumed): the result must cover every one of
    `parameters`, each once, and start every parameter group's `lr` at `lr` (the recipe's `train.lr`), the
    base rate a schedule then changes through the groups' `lr` between steps (a group with `lr` 0 must
    leave its weights unchanged). The trainer saves the optimizer's `state_dict()` in last.pt and loads it
    back on resume, so the update must depend only on that state, the gradients and the groups' settings:
    a resumed run then ends bit for bit as one that never stopped (torch's optimizers do this).
    """

    family: ClassVar[str] = "optimizer"

    def build(self, parameters: Sequence[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        """The optimizer over `parameters` (in this order), every group starting at learning rate `lr`."""
        raise NotImplementedError


# --- schedule ----------------------------------------------------------------


class Schedule(Component):
    """Sets the learning rate as training goes: per step (warm-up, cosine), per validation (plateau), or both.

    Constructed as `cls(**params)`; a recipe names it at `train.schedule`. The trainer calls
    `start(optimizer, total_steps)` once the optimizer is built, every group's `lr` then being its base rate,
    also when a run is resumed (then `load_state_dict` follows with the state saved in last.pt, and the
    optimizer's own state puts back the rates the groups had). After every training step it calls
    `after_step(optimizer, step)`, and after every validation `after_validation(optimizer, improved)`; each
    sets the groups' `lr` for the steps that follow. A schedule changes nothing but the groups' `lr`.

    Resuming is bitwise only if the rates are a function of the calls made and of what `state_dict()`
    returns: keep everything remembered there, as plain data (numbers, strings, lists, dicts, tensors:
    last.pt is loaded without unpickling code). With several training processes only the first validates
    and its schedule's state is copied to the others.
    """

    family: ClassVar[str] = "schedule"

    def start(self, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        """Before the first step: note the groups' base rates, set the first step's (default: as they are).

        `total_steps`: train.epochs times the steps per epoch.
        """

    def after_step(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """After training step `step` (1 after the run's first): set the rate of the next. Default: unchanged."""

    def after_validation(self, optimizer: torch.optim.Optimizer, improved: bool) -> None:
        """After a validation; `improved`: it gave the best score so far. Default: the rate is unchanged."""

    def validation_param(self) -> str | None:
        """The parameter (as set) that acts on validations, refused without a valid split; None: none does.

        Default: None, a schedule that works without validation.
        """
        return None

    def state_dict(self) -> dict[str, Any]:
        """What `load_state_dict` needs to go on as if never stopped: plain data. Default: nothing."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back what `state_dict` returned, after `start`. Default: nothing to put back."""


BASES: dict[str, type[Component]] = {
    "tokenizer": Tokenizer,
    "encoder": Encoder,
    "attention": AttentionScorer,
    "decoder": DecoderNetwork,
    "search": SearchStrategy,
    "dataset": DataSource,
    "metric": Metric,
    "logger": Logger,
    "optimizer": Optimizer,
    "schedule": Schedule,
}
