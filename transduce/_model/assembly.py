"""Assembly: from a resolved recipe and the registry to component instances and the model."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from transduce._data.vocab import Vocabulary
from transduce._model.model import Seq2Seq
from transduce._plugins import positions
from transduce._plugins.contracts import (
    DataSource,
    DecoderNetwork,
    Encoder,
    Logger,
    Metric,
    Schedule,
    SearchStrategy,
    Tokenizer,
)
from transduce._plugins.params import ParamError
from transduce._plugins.registry import Registry
from transduce._recipe.settings import ModelSettings
from transduce.errors import RecipeError


def build(registry: Registry, family: str, spec: dict[str, Any], key: str, **sizes: Any) -> Any:
    """Construct the component `spec` names; its own complaints become recipe errors at `key`.

    A parameter that names a component of another family (Param.family) is passed as a builder of that
    component, which the component calls with the sizes it chooses; None when the recipe says `none`.
    """
    info = registry.get(family, spec["name"])
    if info is None:
        raise RecipeError(registry.unknown_name_message(family, spec["name"]), key=f"{key}.name")
    params = {k: v for k, v in spec.items() if k != "name"}
    for param in info.params:
        if param.family is not None and params.get(param.name) is not None:
            params[param.name] = functools.partial(
                build, registry, param.family, params[param.name], f"{key}.{param.name}"
            )
    try:
        return info.cls(**sizes, **params)
    except ParamError as exc:
        raise RecipeError(f"{family} {spec['name']!r} refuses this setting: {exc}", key=f"{key}.{exc.key}") from None
    except (ValueError, TypeError) as exc:
        raise RecipeError(f"{family} {spec['name']!r} rejected its settings: {exc}", key=key) from None
    except ImportError as exc:  # an optional dependency is missing; the component's message says what to install
        raise RecipeError(f"{family} {spec['name']!r} cannot be used: {exc}", key=key) from None
    except (RuntimeError, MemoryError, OverflowError) as exc:  # e.g. torch cannot allocate the sizes asked for
        raise RecipeError(
            f"{family} {spec['name']!r} could not be built ({type(exc).__name__}: {_first_line(exc)}); lower its sizes",
            key=key,
        ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def tokenizer(registry: Registry, recipe: dict[str, Any], side: str) -> Tokenizer:
    return build(registry, "tokenizer", recipe[side]["tokenizer"], f"{side}.tokenizer")


def data_source(registry: Registry, recipe: dict[str, Any]) -> DataSource:
    return build(registry, "dataset", recipe["data"], "data")


def search(registry: Registry, recipe: dict[str, Any]) -> SearchStrategy:
    return build(registry, "search", recipe["search"], "search")


def metrics(registry: Registry, recipe: dict[str, Any]) -> list[Metric]:
    return [
        build(registry, "metric", spec, f"evaluate.metrics.{i}") for i, spec in enumerate(recipe["evaluate"]["metrics"])
    ]


def loggers(registry: Registry, recipe: dict[str, Any]) -> list[Logger]:
    """The recipe's `loggers:`, in order."""
    return [build(registry, "logger", spec, f"loggers.{i}") for i, spec in enumerate(recipe["loggers"])]


def optimizer(registry: Registry, recipe: dict[str, Any], parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The recipe's train.optimizer, built over `parameters` at the base rate train.lr."""
    spec = recipe["train"]["optimizer"]
    try:
        return build(registry, "optimizer", spec, "train.optimizer").build(parameters, recipe["train"]["lr"])
    except (ValueError, TypeError) as exc:  # torch refuses a setting the component passed on
        raise RecipeError(f"optimizer {spec['name']!r} rejected its settings: {exc}", key="train.optimizer") from None


def schedule(registry: Registry, recipe: dict[str, Any]) -> Schedule:
    return build(registry, "schedule", recipe["train"]["schedule"], "train.schedule")


def model(registry: Registry, recipe: dict[str, Any], source_vocab_size: int, target_vocab_size: int) -> Seq2Seq:
    """The Seq2Seq model: the recipe's encoder and decoder network, with the sizes they need."""
    settings = ModelSettings.of(recipe["model"])
    encoder: Encoder = build(registry, "encoder", settings.encoder, "model.encoder", input_size=settings.embedding_dim)
    decoder: DecoderNetwork = build(
        registry,
        "decoder",
        settings.decoder,
        "model.decoder",
        embedding_dim=settings.embedding_dim,
        vocab_size=target_vocab_size,
        memory_size=encoder.output_size,
        pad_index=Vocabulary.pad_index,
    )
    return Seq2Seq(
        source_vocab_size=source_vocab_size,
        encoder=encoder,
        decoder=decoder,
        embedding_dim=settings.embedding_dim,
        target_vocab_size=target_vocab_size,
        dropout=settings.dropout,
    )


#: Families built inside the model (with sizes), not on their own.
_MODEL_FAMILIES = ("encoder", "decoder", "attention")


def check(registry: Registry, recipe: dict[str, Any]) -> None:
    """Construct every component once, so a combination a component rejects (e.g. 'dot' attention with
    unequal sizes) is reported before any data is read or any file written."""
    for family, spec, key in positions.specs(recipe, registry):
        if family not in _MODEL_FAMILIES:
            build(registry, family, spec, key)
    model(registry, recipe, source_vocab_size=8, target_vocab_size=8)
