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
        """Within: encoding and decoding steps multiply in `dtype` where the encoder and the decoder network
        support it (the built-in `lstm` ones do: copies of their weight matrices in bfloat16 or int8, see each);
        everything else keeps its dtype."""
        with self.encoder.reduced_products(dtype), self.decoder.reduced_products(dtype):
            yield

    @contextmanager
    def restricted_output(self, candidates: torch.Tensor) -> Iterator[None]:
        """Within: decoding steps may give logits for the target tokens `candidates` (C,) only (the built-in
        `lstm` does: its output layer multiplies by their rows alone); see transduce._decoding.shortlist."""
        with self.decoder.restricted_output(candidates):
            yield


#: Elements of logits the loss turns into float32 probabilities at a time (16 MiB): some hundred rows of a large
#: vocabulary, so no copy of the whole (rows, vocab) logits is made besides their gradient. On 1 thread any
#: chunk of 2 to 8 M elements made the loss and its gradient ~1.8x as fast as F.cross_entropy's (1,800 x 8,000
#: logits: 77 against 140 ms); on 2 threads of a busy machine smaller chunks (more operations, each waiting for
#: the slower thread) lost to it: 2 M 185 ms, 4 M 141, 8 M 109 against 163.
LOSS_CHUNK_ELEMENTS = 1 << 22
#: Autograd nodes that make logits without keeping them for their own backward: the gradient may then be
#: written over the logits (`sequence_loss(..., overwrite=True)`). Views pass through to the node below.
_PRODUCTS = frozenset({"AddmmBackward0", "MmBackward0", "LinearBackward0"})
_VIEWS = frozenset({"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0"})


def sequence_loss(
    logits: torch.Tensor,
    target_out: torch.Tensor,
    pad_index: int,
    label_smoothing: float = 0.0,
    *,
    overwrite: bool = False,
) -> torch.Tensor:
    """Mean cross-entropy over the real (non-padding) target tokens: logits (..., V), target_out (...).

    The same value and gradient as F.cross_entropy(..., ignore_index=pad_index, label_smoothing=...), in less
    memory: that keeps the log-probabilities, and its backward makes two more (rows, V) tensors, so with a
    large vocabulary the peak of a training step was four copies of the logits (780 MiB for 128 sentences of
    50 tokens and 8,000 words). Here the loss and its gradient are computed LOSS_CHUNK_ELEMENTS at a time: one
    (rows, V) tensor besides the logits, the gradient. With `overwrite`, when the logits come straight from a
    matrix product (whose backward does not read its output), the gradient is written over them: no extra
    copy. Only for callers that do not read the logits after backward (training does not).
    """
    flat = logits.reshape(-1, logits.size(-1))
    reuse = overwrite and _made_by_product(flat)
    return _CrossEntropy.apply(flat, target_out.reshape(-1), pad_index, label_smoothing, reuse)


def _made_by_product(logits: torch.Tensor) -> bool:
    node = logits.grad_fn
    while node is not None and type(node).__name__ in _VIEWS:
        node = node.next_functions[0][0]
    return node is not None and type(node).__name__ in _PRODUCTS


def _chunks(logits: torch.Tensor) -> Iterator[slice]:
    """Slices of rows of (rows, V) logits, LOSS_CHUNK_ELEMENTS at a time (at least one row)."""
    rows = max(1, LOSS_CHUNK_ELEMENTS // max(logits.size(1), 1))
    return (slice(start, start + rows) for start in range(0, logits.size(0), rows))


class _CrossEntropy(torch.autograd.Function):
    """Chunked cross-entropy with label smoothing and ignored padding (see `sequence_loss`)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, logits: torch.Tensor, target: torch.Tensor, pad_index: int, smoothing: float, reuse: bool
    ) -> torch.Tensor:
        """logits (rows, V), target (rows,) -> the mean loss over rows whose target is not pad_index."""
        real = target != pad_index
        total = logits.new_zeros((), dtype=torch.float32)
        for rows in _chunks(logits):
            part, picked = logits[rows].float(), target[rows].unsqueeze(1)
            log_probs = torch.log_softmax(part, dim=1)
            losses = -log_probs.gather(1, picked).squeeze(1)
            if smoothing:  # minus the mean over the vocabulary of log p, as F.cross_entropy smooths
                losses = (1 - smoothing) * losses - smoothing * log_probs.mean(dim=1)
            total += losses.masked_fill(~real[rows], 0).sum()
        count = real.sum()
        ctx.save_for_backward(logits, target, count)
        ctx.pad_index, ctx.smoothing, ctx.reuse = pad_index, smoothing, reuse
        return total / count

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        """d loss / d logits = (softmax - smoothed one-hot) x grad_output / count on real rows, 0 on padding."""
        logits, target, count = ctx.saved_tensors
        grad = logits if ctx.reuse else torch.empty_like(logits)
        scale = grad_output.float() / count
        for rows in _chunks(logits):
            part, picked = logits[rows].float(), target[rows].unsqueeze(1)
            chunk = torch.softmax(part, dim=1)
            chunk.scatter_add_(1, picked, chunk.new_full(picked.shape, ctx.smoothing - 1))
            if ctx.smoothing:
                chunk.sub_(ctx.smoothing / logits.size(1))
            weight = ((target[rows] != ctx.pad_index).to(chunk.dtype) * scale).unsqueeze(1)
            if grad.dtype == chunk.dtype:
                torch.mul(chunk, weight, out=grad[rows])  # one pass, into place
            else:
                grad[rows] = chunk.mul_(weight)
        return grad, None, None, None, None
