"""The sequence-to-sequence model: source embeddings, a plugged-in encoder and a plugged-in decoder network.

The core owns only what every model shares: the source embeddings (and their dropout), the source mask and
the special token indices. The decoder network (family `decoder`, e.g. the built-in `lstm`) does the rest:
teacher forcing in `forward`, one position at a time in `start` and `step`, which search strategies call
through this class.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from transduce._data.vocab import Vocabulary
from transduce._plugins.contracts import DecoderNetwork, Encoder, Memory


class Seq2Seq(nn.Module):
    """Source embeddings + encoder + decoder network, with the decoding interface search strategies use.

    The special token indices default to those every Vocabulary gives.
    """

    def __init__(
        self,
        *,
        source_vocab_size: int,
        encoder: Encoder,
        decoder: DecoderNetwork,
        embedding_dim: int,
        target_vocab_size: int | None = None,
        dropout: float = 0.0,
        pad_index: int = Vocabulary.pad_index,
        bos_index: int = Vocabulary.bos_index,
        eos_index: int = Vocabulary.eos_index,
    ) -> None:
        super().__init__()
        self.pad_index, self.bos_index, self.eos_index = pad_index, bos_index, eos_index
        #: The size of the target vocabulary the decoder network was built with (None: not told).
        self.target_vocab_size = target_vocab_size
        self.source_embedding = nn.Embedding(source_vocab_size, embedding_dim, padding_idx=pad_index)
        self.encoder = encoder
        self.decoder = decoder
        self.dropout = nn.Dropout(dropout)

    def encode(self, source: torch.Tensor, lengths: torch.Tensor) -> Memory:
        """source (batch, src_len) indices, lengths (batch,) -> Memory, prepared by the decoder network."""
        embedded = self.dropout(self.source_embedding(source))
        states, final = self.encoder(embedded, lengths)
        return self.decoder.prepare(Memory(states, source != self.pad_index, final))

    def forward(
        self,
        source: torch.Tensor,
        lengths: torch.Tensor,
        target_in: torch.Tensor,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher forcing. target_in (batch, tgt_len) starts with `<s>` -> logits (batch, tgt_len, vocab).

        With `positions`, a (batch, tgt_len) bool mask (e.g. the real target tokens), only the logits there:
        (positions.sum(), vocab), in row-major order. The loss needs none at padding, and with a large
        vocabulary the output layer is most of a training step's work.
        """
        return self.decoder(target_in, self.encode(source, lengths), positions)

    # --- the decoding interface of search strategies ------------------------------

    def start(self, memory: Memory) -> Any:
        """The decoder network's state before the first step (opaque to search strategies)."""
        return self.decoder.start(memory)

    def step(self, tokens: torch.Tensor, state: Any, memory: Memory) -> tuple[torch.Tensor, Any, torch.Tensor | None]:
        """One decoding step: tokens (rows,) -> logits (rows, vocab), new state, attention (rows, src_len) or None.

        rows is memory.batch_size or a multiple k of it: then k consecutive rows share a memory row (e.g. the
        k hypotheses of a beam), and their k queries attend to it in one product, instead of k copies of
        the memory each taking one (several times faster for beam search).
        """
        if tokens.size(0) % memory.batch_size:
            raise ValueError(f"step: {tokens.size(0)} rows do not share {memory.batch_size} memory rows evenly")
        return self.decoder.step(tokens, state, memory)

    def reorder_state(self, state: Any, index: torch.Tensor) -> Any:
        """Rows `index` (int64) of a state: to follow beams, repeat rows or drop finished sentences."""
        return self.decoder.reorder_state(state, index)

    @property
    def product_dtype(self) -> torch.dtype:
        """The dtype the decoding steps multiply in (see reduced_products)."""
        return self.decoder.product_dtype

    @contextmanager
    def reduced_products(self, dtype: torch.dtype) -> Iterator[None]:
        """Within: decoding steps multiply in `dtype` where the decoder network supports it (the built-in
        `lstm` does: bfloat16 copies of its weight matrices, fast on CPUs with AMX); everything else keeps its
        dtype."""
        with self.decoder.reduced_products(dtype):
            yield

    @contextmanager
    def restricted_output(self, candidates: torch.Tensor) -> Iterator[None]:
        """Within: decoding steps may give logits for the target tokens `candidates` (C,) only (the built-in
        `lstm` does: its output layer multiplies by their rows alone); see transduce._decoding.shortlist."""
        with self.decoder.restricted_output(candidates):
            yield


def sequence_loss(
    logits: torch.Tensor, target_out: torch.Tensor, pad_index: int, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy over the real (non-padding) target tokens."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        target_out.reshape(-1),
        ignore_index=pad_index,
        label_smoothing=label_smoothing,
    )
