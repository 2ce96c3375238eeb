"""Assembly: from a resolved recipe and the registry to component instances and the model."""

from __future__ import annotations

from typing import Any

from transduce.components import (
    AttentionScorer,
    DataSource,
    DecodingStrategy,
    Encoder,
    Logger,
    Metric,
    Tokenizer,
)
from transduce.errors import RecipeError
from transduce.model import Seq2Seq
from transduce.registry import Registry


def build(registry: Registry, family: str, spec: dict[str, Any], key: str, **sizes: Any) -> Any:
    """Construct the component `spec` names; its own complaints become recipe errors at `key`."""
    info = registry.get(family, spec["name"])
    if info is None:
        raise RecipeError(registry.unknown_name_message(family, spec["name"]), key=f"{key}.name")
    params = {k: v for k, v in spec.items() if k != "name"}
    try:
        return info.cls(**sizes, **params)
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


def decoding(registry: Registry, recipe: dict[str, Any]) -> DecodingStrategy:
    return build(registry, "decoder", recipe["decoder"], "decoder")


def metrics(registry: Registry, recipe: dict[str, Any]) -> list[Metric]:
    return [
        build(registry, "metric", spec, f"evaluate.metrics.{i}") for i, spec in enumerate(recipe["evaluate"]["metrics"])
    ]


def loggers(registry: Registry, recipe: dict[str, Any]) -> list[Logger]:
    """The recipe's `loggers:`, in order."""
    return [build(registry, "logger", spec, f"loggers.{i}") for i, spec in enumerate(recipe["loggers"])]


def model(registry: Registry, recipe: dict[str, Any], source_vocab_size: int, target_vocab_size: int) -> Seq2Seq:
    """The Seq2Seq model with the recipe's encoder and attention scorer plugged in."""
    settings = recipe["model"]
    encoder: Encoder = build(
        registry, "encoder", settings["encoder"], "model.encoder", input_size=settings["embedding_dim"]
    )
    scorer: AttentionScorer = build(
        registry,
        "attention",
        settings["attention"],
        "model.attention",
        query_size=settings["hidden_size"],
        key_size=encoder.output_size,
    )
    return Seq2Seq(
        source_vocab_size=source_vocab_size,
        target_vocab_size=target_vocab_size,
        encoder=encoder,
        scorer=scorer,
        embedding_dim=settings["embedding_dim"],
        hidden_size=settings["hidden_size"],
        decoder_layers=settings["decoder_layers"],
        dropout=settings["dropout"],
    )


def check(registry: Registry, recipe: dict[str, Any]) -> None:
    """Construct every component once, so a combination a component rejects (e.g. 'dot' attention with
    unequal sizes) is reported before any data is read or any file written."""
    for side in ("source", "target"):
        tokenizer(registry, recipe, side)
    data_source(registry, recipe)
    decoding(registry, recipe)
    for i, spec in enumerate(recipe["evaluate"].get("compare", [])):
        build(registry, "decoder", spec, f"evaluate.compare.{i}")
    metrics(registry, recipe)
    loggers(registry, recipe)
    model(registry, recipe, source_vocab_size=8, target_vocab_size=8)
