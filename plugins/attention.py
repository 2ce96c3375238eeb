"""Built-in attention scorers: dot and general (Luong), additive (Bahdanau)."""

from __future__ import annotations

import torch
from torch import nn

from transduce.api import AttentionScorer, Param, hookimpl


class DotScorer(AttentionScorer):
    """Luong dot: score = h_dec · h_enc; needs equal decoder and encoder sizes."""

    name = "dot"
    params = ()

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        if query_size != key_size:
            raise ValueError(
                f"dot attention needs the decoder hidden size ({query_size}) to equal the encoder "
                f"output size ({key_size}); make them equal or use 'general' attention"
            )

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query, prepared.transpose(1, 2))


class GeneralScorer(AttentionScorer):
    """Luong general: score = h_dec · W h_enc, with W h_enc computed once per batch."""

    name = "general"
    params = ()

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.project = nn.Linear(key_size, query_size, bias=False)

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        return self.project(keys)

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query, prepared.transpose(1, 2))


class AdditiveScorer(AttentionScorer):
    """Bahdanau additive: score = v · tanh(W1 h_enc + W2 h_dec), W1 h_enc computed once per batch."""

    name = "additive"
    params = (
        Param("hidden_size", int, None, "hidden layer size (null: the encoder size)", min=1, max=8192, nullable=True),
    )

    def __init__(self, query_size: int, key_size: int, hidden_size: int | None = None) -> None:
        super().__init__()
        size = hidden_size or key_size
        self.keys = nn.Linear(key_size, size, bias=False)
        self.query = nn.Linear(query_size, size, bias=True)
        self.v = nn.Linear(size, 1, bias=False)

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        return self.keys(keys)

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        # (batch, tgt_len, 1, size) + (batch, 1, src_len, size) -> (batch, tgt_len, src_len)
        hidden = torch.tanh(self.query(query).unsqueeze(2) + prepared.unsqueeze(1))
        return self.v(hidden).squeeze(-1)


@hookimpl
def transduce_components() -> list[type[AttentionScorer]]:
    return [DotScorer, GeneralScorer, AdditiveScorer]
