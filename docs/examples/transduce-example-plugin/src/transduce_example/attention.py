"""The `scaled_dot` attention scorer: dot products divided by the square root of the size."""

from __future__ import annotations

import math

import torch
from torch import nn
from transduce.api import AttentionScorer, Param


class ScaledDotScorer(AttentionScorer):
    """Scaled dot product: score = q · k / sqrt(d); keys are projected to the query size when sizes differ."""

    name = "scaled_dot"
    params = (
        Param(
            "temperature",
            float,
            None,
            "divide the dot products by this (null: the square root of the decoder hidden size)",
            min=0.0,
            nullable=True,
        ),
        Param("projection", bool, False, "learn a key projection even when the sizes are equal"),
    )

    def __init__(
        self, query_size: int, key_size: int, temperature: float | None = None, projection: bool = False
    ) -> None:
        super().__init__()
        if temperature is not None and temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.scale = 1.0 / (temperature if temperature is not None else math.sqrt(query_size))
        needs_projection = projection or key_size != query_size
        self.to_query = nn.Linear(key_size, query_size, bias=False) if needs_projection else None

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        """keys (batch, src_len, key_size) -> scaled keys (batch, src_len, query_size), once per batch."""
        if self.to_query is not None:
            keys = self.to_query(keys)
        return keys * self.scale

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        """query (batch, tgt_len, query_size) -> raw scores (batch, tgt_len, src_len); the core masks padding."""
        return torch.bmm(query, prepared.transpose(1, 2))
