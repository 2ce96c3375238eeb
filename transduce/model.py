"""The sequence-to-sequence model: embeddings, a plugged-in encoder, an LSTM decoder with plugged-in attention.

Training runs the decoder over the whole target prefix in one LSTM call and
scores attention for all positions in one batched call (no input feeding, so
no per-step loop). Decoding strategies use `start` and `step`, which run the
same modules one position at a time, so both paths give the same logits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from transduce.components import AttentionScorer, Encoder


@dataclass
class Memory:
    """The encoded source batch, as decoding needs it.

    states: (batch, src_len, key_size) encoder outputs.
    prepared: the attention scorer's precomputed keys.
    mask: (batch, src_len) bool, True on real (non-padding) tokens.
    final: (h, c), each (layers, batch, key_size), the encoder's last states.
    """

    states: torch.Tensor
    prepared: torch.Tensor
    mask: torch.Tensor
    final: tuple[torch.Tensor, torch.Tensor]

    @property
    def batch_size(self) -> int:
        return self.states.size(0)

    def select(self, index: torch.Tensor) -> Memory:
        """Rows `index` of every tensor (to reorder or repeat sentences, e.g. for beams)."""
        return Memory(
            self.states.index_select(0, index),
            self.prepared.index_select(0, index),
            self.mask.index_select(0, index),
            (self.final[0].index_select(1, index), self.final[1].index_select(1, index)),
        )


State = tuple[torch.Tensor, torch.Tensor]


class _Products:
    """Copies, in a smaller dtype, of the weight matrices a decoding step multiplies by (decoder LSTM,
    attentional layer, output layer), made on entering Seq2Seq.reduced_products (the Translator enters it for
    each batch, so validation between epochs multiplies by the current weights)."""

    #: Products run on row counts rounded up to a multiple of this: oneDNN compiles a kernel for every shape
    #: (about 1 ms each), and rows fall as finished sentences leave a batch.
    ROWS = 64

    def __init__(self, model: Seq2Seq, dtype: torch.dtype) -> None:
        self.dtype = dtype
        decoder = model.decoder
        self.cell = [
            self._pair(
                torch.cat([getattr(decoder, f"weight_ih_l{layer}"), getattr(decoder, f"weight_hh_l{layer}")], 1),
                getattr(decoder, f"bias_ih_l{layer}") + getattr(decoder, f"bias_hh_l{layer}"),
            )
            for layer in range(model.decoder_layers)
        ]
        self.layers = {
            model.combine: self._pair(model.combine.weight, model.combine.bias),
            model.output: self._pair(model.output.weight, model.output.bias),
        }

    def _pair(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return weight.detach().t().to(self.dtype).contiguous(), bias.detach().to(self.dtype)

    def linear(self, inputs: torch.Tensor, weights: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """inputs @ weight + bias, computed in the small dtype and returned in the inputs' dtype."""
        weight, bias = weights
        flat = inputs.reshape(-1, inputs.size(-1)).to(self.dtype)
        rows = flat.size(0)
        padding = -rows % self.ROWS
        if padding:
            flat = F.pad(flat, (0, 0, 0, padding))
        product = torch.addmm(bias, flat, weight)
        return product[:rows].to(inputs.dtype).view(*inputs.shape[:-1], -1)

    def lstm_cell(self, layer: int, inputs: torch.Tensor, state: State) -> State:
        """torch.lstm_cell's arithmetic (gates in PyTorch's order i, f, g, o), the product in the small dtype."""
        h, c = state
        gates = self.linear(torch.cat([inputs, h], dim=1), self.cell[layer])
        i, f, g, o = gates.chunk(4, dim=1)
        cell = torch.sigmoid(f).mul_(c).add_(torch.sigmoid(i).mul_(torch.tanh(g)))
        return torch.sigmoid(o).mul_(torch.tanh(cell)), cell


class Seq2Seq(nn.Module):
    """Encoder-decoder with attention and an output layer over [decoder state; context]."""

    def __init__(
        self,
        *,
        source_vocab_size: int,
        target_vocab_size: int,
        encoder: Encoder,
        scorer: AttentionScorer,
        embedding_dim: int,
        hidden_size: int,
        decoder_layers: int = 1,
        dropout: float = 0.0,
        pad_index: int = 0,
        bos_index: int = 2,
        eos_index: int = 3,
    ) -> None:
        super().__init__()
        self.pad_index, self.bos_index, self.eos_index = pad_index, bos_index, eos_index
        self.source_embedding = nn.Embedding(source_vocab_size, embedding_dim, padding_idx=pad_index)
        self.target_embedding = nn.Embedding(target_vocab_size, embedding_dim, padding_idx=pad_index)
        self.encoder = encoder
        self.scorer = scorer
        self.decoder_layers = decoder_layers
        self.decoder = nn.LSTM(
            embedding_dim,
            hidden_size,
            num_layers=decoder_layers,
            batch_first=True,
            dropout=dropout if decoder_layers > 1 else 0.0,
        )
        key_size = encoder.output_size
        # Encoder final states start the decoder; a bridge maps them when sizes differ.
        self.bridge = None if key_size == hidden_size else nn.Linear(key_size, hidden_size)
        self.combine = nn.Linear(hidden_size + key_size, hidden_size)
        self.output = nn.Linear(hidden_size, target_vocab_size)
        self.dropout = nn.Dropout(dropout)
        self._products: _Products | None = None

    @property
    def product_dtype(self) -> torch.dtype:
        """The dtype the decoding steps multiply in: the weights' own, unless reduced_products says otherwise."""
        return self._products.dtype if self._products is not None else self.output.weight.dtype

    @contextmanager
    def reduced_products(self, dtype: torch.dtype) -> Iterator[None]:
        """Within: `step` multiplies in `dtype` (e.g. bfloat16, fast on CPUs with AMX) by copies of its weight
        matrices, made here once; states, attention, softmax and the weights themselves keep their dtype.

        Unlike decoding a copy of the model in `dtype`, the elementwise work (slower in bfloat16 on a CPU)
        and the encoder stay in float32: on 2 cores a beam-5 step of 640 rows took 1.6 ms instead of 2.9.
        """
        if dtype == self.output.weight.dtype:
            yield
            return
        self._products = _Products(self, dtype)
        try:
            yield
        finally:
            self._products = None

    def _linear(self, layer: nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
        return layer(inputs) if self._products is None else self._products.linear(inputs, self._products.layers[layer])

    # --- encoding --------------------------------------------------------------

    def encode(self, source: torch.Tensor, lengths: torch.Tensor) -> Memory:
        """source (batch, src_len) indices, lengths (batch,) -> Memory."""
        embedded = self.dropout(self.source_embedding(source))
        states, final = self.encoder(embedded, lengths)
        mask = source != self.pad_index
        return Memory(states, self.scorer.prepare(states), mask, final)

    def start(self, memory: Memory) -> State:
        """The decoder's initial (h, c), each (decoder_layers, batch, hidden_size)."""
        h, c = memory.final
        return self._fit(h), self._fit(c)

    def _fit(self, state: torch.Tensor) -> torch.Tensor:
        layers = state.size(0)
        if layers >= self.decoder_layers:
            state = state[layers - self.decoder_layers :]
        else:  # fewer encoder layers: the top one starts every extra decoder layer
            extra = state[-1:].expand(self.decoder_layers - layers, -1, -1)
            state = torch.cat([state, extra])
        if self.bridge is not None:
            state = torch.tanh(self.bridge(state))
        return state.contiguous()

    # --- decoding --------------------------------------------------------------

    def attend(self, outputs: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention and output layer over all given decoder positions at once.

        outputs (batch, tgt_len, hidden) -> logits (batch, tgt_len, vocab),
        weights (batch, tgt_len, src_len). Padding positions get exactly zero weight.
        """
        attentional, weights = self._attentional(outputs, memory)
        return self._linear(self.output, self.dropout(attentional)), weights

    def _attentional(self, outputs: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """tanh(W [decoder state; context]) (batch, tgt_len, hidden) and the attention weights."""
        scores = self.scorer.score(outputs, memory.prepared)
        scores = scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights, memory.states)
        return torch.tanh(self._linear(self.combine, torch.cat([outputs, context], dim=-1))), weights

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
        memory = self.encode(source, lengths)
        embedded = self.dropout(self.target_embedding(target_in))
        outputs, _ = self.decoder(embedded, self.start(memory))
        attentional, _ = self._attentional(outputs, memory)
        if positions is not None:
            attentional = attentional[positions]
        return self.output(self.dropout(attentional))

    def step(self, tokens: torch.Tensor, state: State, memory: Memory) -> tuple[torch.Tensor, State, torch.Tensor]:
        """One decoding step: tokens (rows,) -> logits (rows, vocab), new state, weights (rows, src_len).

        rows is memory.batch_size or a multiple k of it: then k consecutive rows share a memory row (e.g. the
        k hypotheses of a beam), and their k queries attend to it in one product, instead of k copies of
        the memory each taking one (several times faster for beam search).
        """
        rows, sentences = tokens.size(0), memory.batch_size
        if rows % sentences:
            raise ValueError(f"step: {rows} rows do not share {sentences} memory rows evenly")
        embedded = self.dropout(self.target_embedding(tokens.unsqueeze(1)))
        if self.training:  # nn.LSTM applies the dropout between stacked layers
            outputs, state = self.decoder(embedded, state)
        else:
            outputs, state = self._cell_step(embedded.squeeze(1), state)
        logits, weights = self.attend(outputs.reshape(sentences, rows // sentences, -1), memory)
        return logits.reshape(rows, -1), state, weights.reshape(rows, -1)

    def _cell_step(self, inputs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """The decoder LSTM over one position, layer by layer, with its own weights: the same results as
        calling it, at less cost per call (a decoding step is a small batch through one position)."""
        hs, cs = [], []
        for layer in range(self.decoder_layers):
            if self._products is not None:
                inputs, cell = self._products.lstm_cell(layer, inputs, (state[0][layer], state[1][layer]))
            else:
                weights = (
                    getattr(self.decoder, f"{name}_l{layer}")
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                )
                inputs, cell = torch.lstm_cell(inputs, (state[0][layer], state[1][layer]), *weights)
            hs.append(inputs)
            cs.append(cell)
        return inputs, (torch.stack(hs), torch.stack(cs))


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
