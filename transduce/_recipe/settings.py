"""Typed settings: the recipe's core sections as frozen dataclasses, each parameter declared once, as a field.

A core parameter is a field made by `setting(...)`: its annotation gives the type (`| None`: null is
allowed), its default the default, and its metadata the help text, bounds, choices and path kind. The
`Param` tuples that validation, `transduce plugins`, `--threads` and the reference pages use are derived
from the fields (`params_of`), so adding a parameter is adding one field (as fairseq derives its options
from config dataclasses).

The resolved recipe stays a plain dict: it is what recipe.yaml holds and what plugins receive. The core
reads it through `Settings.of(recipe)`, by attribute (`settings.train.epochs`), so a misspelled name is
found by reading the source (tests/test_settings.py checks every such read) instead of at run time.

Component specs (`{name, params...}`: the data source, tokenizers, encoder, decoder, search, metrics,
loggers) stay the validated dicts: their keys are declared by plugins and known only once the registry
is loaded, and the plugin API (`assembly.build`, a logger's `run_start`) takes them as dicts.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Self

from transduce._plugins.params import REQUIRED, Param

#: A component spec as validation resolved it: `{"name": ..., **its parameters}`.
Spec = dict[str, Any]

#: Field metadata key under which `setting` keeps a parameter's declaration.
_PARAM = "transduce.param"

#: train.precision's values: the training forward pass's and decoding's products (see docs/decoding.md).
PRECISIONS = ("fp32", "bf16", "int8")

#: evaluate.shortlist's bound: target tokens per source token (transduce._decoding.shortlist keeps twice as many).
MAX_SHORTLIST = 500

# Bounds that keep a mistyped size a clear error instead of a huge allocation or a build that never ends.
MAX_SIZE = 8192
MAX_LAYERS = 32


def setting(
    default: Any = REQUIRED,
    help: str = "",
    *,
    choices: tuple[Any, ...] | None = None,
    min: float | None = None,
    max: float | None = None,
    path: str | None = None,
) -> Any:
    """A dataclass field that is a core recipe parameter (see `Param` for what each argument means)."""
    metadata = {_PARAM: {"help": help, "choices": choices, "min": min, "max": max, "path": path}}
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class _Section:
    """A recipe section (or the whole recipe) as a frozen dataclass, built from its resolved mapping."""

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Self:
        """The section from its resolved mapping: nested sections typed, component specs copied (the
        settings never share a dict with the recipe). A key without a field is a TypeError (the mapping
        was not resolved by this version); a parameter left out takes its declared default."""
        sections = section_fields(cls)
        built = {}
        for key, value in values.items():
            section = sections.get(key)
            built[key] = section.of(value) if section is not None else copy.deepcopy(value)
        return cls(**built)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SideSettings(_Section):
    """`source` and `target`: the side's tokenizer and vocabulary."""

    min_freq: int = setting(1, "drop tokens seen fewer times than this in the training split", min=1)
    max_size: int | None = setting(30000, "keep at most this many entries, specials included", min=5)
    max_length: int | None = setting(
        None,
        "drop training pairs whose tokens on this side exceed this count (null: the decoding limits, 1,024 "
        "source and 4,096 target tokens)",
        min=1,
    )
    tokenizer: Spec


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceSettings(SideSettings):
    """`source`: a side, with the settings of the source alone (the target is read and written in reading order)."""

    reverse: bool = setting(
        False,
        "feed the source tokens to the encoder in reverse order (its first tokens then sit next to the decoder's "
        "start); reports and heat maps still show them in reading order",
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelSettings(_Section):
    """`model`: the encoder, the decoder network and the embeddings they share sizes with."""

    embedding_dim: int = setting(
        128,
        "size of the source and target token embeddings (the decoder network gets it for its target embeddings)",
        min=1,
        max=MAX_SIZE,
    )
    dropout: float = setting(0.1, "dropout on the source embeddings (model.decoder has its own)", min=0.0, max=0.9)
    encoder: Spec
    decoder: Spec


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSettings(_Section):
    """`train`: optimisation, early stopping and hardware."""

    epochs: int = setting(10, "passes over the training split", min=1)
    batch_size: int = setting(64, "sentences per batch, all processes together (batches are bucketed by length)", min=1)
    batch_tokens: int | None = setting(
        None,
        "fill batches up to this many tokens instead of batch_size sentences, all processes together: rows x the "
        "longer side's padded length (the source, or the target with its end token), as fairseq's --max-tokens "
        "counts them; a pair longer than this gets a batch of its own (null: batch_size sentences)",
        min=1,
        max=10_000_000,
    )
    accumulate: int = setting(
        1,
        "batches per optimizer step (gradient accumulation): their gradients add up as one batch of their "
        "tokens would give; train.checkpoint_every counts optimizer steps",
        min=1,
        max=1024,
    )
    lr: float = setting(
        0.001,
        "base learning rate of train.optimizer; train.schedule changes it as training goes",
        min=0.0,
        max=10.0,
    )
    clip_grad_norm: float | None = setting(5.0, "clip the gradient norm to this value (null: no clipping)", min=0.0)
    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy loss", min=0.0, max=0.99)
    patience: int | None = setting(None, "stop after this many validations without improvement (null: never)", min=1)
    #: Resolved to a metric's name: null becomes the first of evaluate.metrics.
    best_metric: str | None = setting(
        None, "validation metric that picks the best checkpoint (null: the first of evaluate.metrics)"
    )
    device: str = setting("auto", "where to train: auto picks CUDA when present", choices=("auto", "cpu", "cuda"))
    precision: str = setting(
        "fp32",
        "bf16: the training forward pass in bfloat16 autocast (GPUs since Ampere, CPUs with AVX-512 BF16 or AMX), "
        "and on the CPU "
        "decoding's matrix products in bfloat16; int8: training in float32, decoding's matrix products in int8 "
        "with per-row scales (CPU only); change it per command with --set train.precision=...",
        choices=PRECISIONS,
    )
    threads: int | None = setting(None, "torch CPU threads (null: torch's default)", min=1, max=1024)
    valid_every: int = setting(1, "validate every this many epochs", min=1)
    checkpoint_every: int | None = setting(
        None, "also write the last checkpoint every this many steps within an epoch (null: only by time)", min=1
    )
    checkpoint_minutes: float | None = setting(
        10.0,
        "also write the last checkpoint when this many minutes passed since the previous one (null: never)",
        min=0.0,
    )
    optimizer: Spec
    schedule: Spec


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluateSettings(_Section):
    """`evaluate`: the final report's split, metrics, compared strategies and analysis."""

    split: str = setting("test", "split the final report scores", choices=("train", "valid", "test"))
    examples: int = setting(10, "examples shown in the report table", min=0)
    batch_size: int = setting(256, "sentences per decoding batch", min=1)
    shortlist: int | None = setting(
        None,
        "decode over a vocabulary shortlist (evaluate, translate, chat; validation always decodes over the whole "
        "vocabulary): per batch, the target tokens most often in a training pair with each of its source tokens, "
        "this many per source token, with the shortlist_frequent most frequent ones (learned from the training "
        "split at first use, kept in the run as lexicon.pt); faster, but an output may change where its best "
        "token is not listed; null: the whole vocabulary",
        min=1,
        max=MAX_SHORTLIST,
    )
    shortlist_frequent: int = setting(
        100, "the most frequent target tokens every shortlist holds (with the specials)", min=0, max=1_000_000
    )
    buckets: int = setting(5, "source-length groups scored separately in the report", min=1, max=20)
    extremes: int = setting(5, "best and worst examples (by sentence chrF) listed in the report", min=0)
    heatmaps: int = setting(3, "examples drawn as attention heat maps in the HTML report", min=0)
    metrics: list[Spec]
    #: Search strategies the report also scores and times, as the `search` section names one.
    compare: list[Spec]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings(_Section):
    """The whole resolved recipe, its sections in recipe order."""

    seed: int = setting(1, "seed of every random choice: reruns give the same result", min=0, max=2**32 - 1)
    data: Spec
    source: SourceSettings
    target: SideSettings
    model: ModelSettings
    train: TrainSettings
    search: Spec
    evaluate: EvaluateSettings
    loggers: list[Spec]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _section_type(hint: Any) -> type[_Section] | None:
    return hint if isinstance(hint, type) and issubclass(hint, _Section) else None


def section_fields(cls: type[_Section]) -> dict[str, type[_Section] | None]:
    """Field name -> its section class (a nested section), or None (a parameter or a component spec)."""
    hints = _hints(cls)
    return {field.name: _section_type(hints[field.name]) for field in dataclasses.fields(cls)}


@functools.cache
def params_of(cls: type[_Section]) -> tuple[Param, ...]:
    """The `Param` of every field of `cls` that `setting` made, in field order (a base class's first)."""
    hints = _hints(cls)
    return tuple(_param(field, hints[field.name]) for field in dataclasses.fields(cls) if _PARAM in field.metadata)


def _param(field: dataclasses.Field[Any], hint: Any) -> Param:
    kind, nullable = _value_type(field.name, hint)
    default = REQUIRED if field.default is dataclasses.MISSING else field.default
    return Param(field.name, kind, default, nullable=nullable, **field.metadata[_PARAM])


def _value_type(name: str, hint: Any) -> tuple[type, bool]:
    """(type, nullable) from an annotation such as `int` or `float | None`."""
    members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    kinds = [member for member in members if member is not type(None)]
    if len(kinds) != 1 or not isinstance(kinds[0], type):
        raise TypeError(f"setting {name!r}: annotate it as one type, or one type | None, got {hint!r}")
    return kinds[0], len(kinds) < len(members)


# The Param tuples, derived: what validation, the reference pages and the command line read.
(SEED,) = params_of(Settings)
VOCAB_PARAMS = params_of(SideSettings)
#: Settings of the source side alone.
SOURCE_PARAMS = tuple(param for param in params_of(SourceSettings) if param not in VOCAB_PARAMS)
MODEL_PARAMS = params_of(ModelSettings)
TRAIN_PARAMS = params_of(TrainSettings)
EVALUATE_PARAMS = params_of(EvaluateSettings)
#: The recipe's sections, in order.
TOP_LEVEL = tuple(field.name for field in dataclasses.fields(Settings))
