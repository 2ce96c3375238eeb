"""The built-in decoder network `lstm`: a recurrent decoder (LSTM or GRU) and the classic options around it.

One class covers the models people learn sequence-to-sequence with: the plain encoder-decoder (attention
`none`: the encoder's final state is the only context), the peeky decoder (the encoder's summary vector
fed into every step and into the output layer), Luong attention (the default: `general`, the attentional
layer tanh(W [h; context]) before the output layer) and Luong input feeding (the previous attentional
vector concatenated to the next input).

Teacher forcing runs the recurrent layers over the whole target prefix in one call and scores attention for
all positions in one batched call, except with input feeding, where each input needs the previous
position's attention: that path steps through the positions (`_fed`). `start` and `step` run the same
weights one position at a time, so both paths give the same logits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F
from transduce_builtins.weight_copies import KeptCopies

from transduce.api import AttentionBuilder, DecoderNetwork, Memory, Param, ParamError, hookimpl


class RecurrentState(NamedTuple):
    """The `lstm` decoder network's state.

    h: (layers, rows, hidden_size); c: the same for an LSTM, None for a GRU;
    feed: (rows, hidden_size), the previous attentional vector with input feeding, else None.
    """

    h: torch.Tensor
    c: torch.Tensor | None
    feed: torch.Tensor | None


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) as 2 sigmoid(2x) - 1, within 2e-7 of torch.tanh: on the CPU torch.tanh took 35-70 us for a
    (64, 256) float32 tensor, this 23 us (torch.sigmoid is about 9 times as fast as torch.tanh there). Used by
    the reduced-precision decoding steps, whose products round far more; float32 keeps torch.tanh."""
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


#: int8 products are symmetric: each row's largest magnitude maps to this level (-127..127, never -128).
INT8_LEVELS = 127
#: Rows whose largest magnitude is below this quantize as if it were this (all their values round to 0).
SMALLEST_SCALE = 1e-12


def quantize_rows(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """matrix (rows, n) float -> values (rows, n) int8 and scales (rows, 1) float32, values * scales ~ matrix.

    Per-row symmetric quantization: one scale per row (a weight matrix's output row, an activation's
    sentence), so a row of small values keeps its precision beside a row of large ones; an entry is off by at
    most half its row's scale (largest magnitude / 254).
    """
    largest = matrix.detach().abs().amax(dim=1, keepdim=True).float().clamp_(min=SMALLEST_SCALE)
    scales = largest / INT8_LEVELS
    return torch.round(matrix / scales).to(torch.int8), scales


class Int8Matrix(NamedTuple):
    """A linear layer's weight for int8 products: values (in, out) int8 (the weight transposed, as
    torch._int_mm takes it), scales (1, out) float32, one per output row of the weight, and bias (out,)."""

    values: torch.Tensor
    scales: torch.Tensor
    bias: torch.Tensor

    @classmethod
    def of(cls, weight: torch.Tensor, bias: torch.Tensor) -> Int8Matrix:
        """weight (out, in), bias (out,) float -> the quantized matrix."""
        values, scales = quantize_rows(weight)
        return cls(values.t().contiguous(), scales.t().contiguous(), bias.detach().float())

    def addmm(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs (rows, in) float -> inputs @ weight.T + bias (rows, out) float32.

        The inputs are quantized per row on the fly (dynamic quantization); the int32 product is exact, so the
        only error is the two roundings. torch._int_mm runs oneDNN's int8 kernels (VNNI or AMX where the CPU
        has them).
        """
        values, scales = quantize_rows(inputs)
        # int32 x column scales (to float32), then x row scales + bias: two passes over the (rows, out) product
        return torch.addcmul(self.bias, torch._int_mm(values, self.values) * self.scales, scales)

    def columns(self, index: torch.Tensor) -> Int8Matrix:
        """The output rows `index` (C,) of the weight only; each keeps its scale, so its products are unchanged."""
        return Int8Matrix(self.values[:, index].contiguous(), self.scales[:, index], self.bias[index])


class _FloatMatrix(NamedTuple):
    """A linear layer's weight transposed, (in, out), and bias (out,), in a smaller float dtype."""

    weight: torch.Tensor
    bias: torch.Tensor

    @classmethod
    def of(cls, weight: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype) -> _FloatMatrix:
        return cls(weight.detach().t().to(dtype).contiguous(), bias.detach().to(dtype))

    def addmm(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs (rows, in) -> inputs @ weight + bias (rows, out) in the matrix's dtype."""
        return torch.addmm(self.bias, inputs.to(self.weight.dtype), self.weight)

    def columns(self, index: torch.Tensor) -> _FloatMatrix:
        return _FloatMatrix(self.weight[:, index].contiguous(), self.bias[index])


class _Products:
    """Copies, in a smaller dtype, of the weight matrices a decoding step multiplies by (recurrent layers,
    attentional layer, output layer), made on entering LSTMDecoder.reduced_products when a weight changed since
    the last copies (so validation between epochs multiplies by the current weights)."""

    #: Products run on row counts rounded up to a multiple of this: oneDNN compiles a kernel for every shape
    #: (about 1 ms each), and rows fall as finished sentences leave a batch.
    ROWS = 64

    def __init__(self, decoder: LSTMDecoder, dtype: torch.dtype) -> None:
        self.dtype = dtype
        rnn = decoder.rnn
        self.cell: list[Any] = []
        for layer in range(decoder.layers):
            w_ih, w_hh, b_ih, b_hh = _cell_weights(rnn, layer)
            if decoder.cell == "lstm":  # one product over [input; h]
                self.cell.append(self._matrix(torch.cat([w_ih, w_hh], 1), b_ih + b_hh))
            else:  # a GRU needs the hidden part apart (its reset gate multiplies it)
                self.cell.append((self._matrix(w_ih, b_ih), self._matrix(w_hh, b_hh)))
        self.layers = {
            layer: self._matrix(layer.weight, layer.bias)
            for layer in (decoder.combine, decoder.output)
            if layer is not None
        }
        self._columns: tuple[torch.Tensor, Any] | None = None  # (index, the output layer's rows `index`)

    def columns(self, layer: nn.Linear, index: torch.Tensor) -> Any:
        """`layer`'s matrix restricted to its output rows `index` (C,): made once per index tensor (a batch's
        vocabulary shortlist), then reused at every step."""
        if self._columns is None or self._columns[0] is not index:
            self._columns = (index, self.layers[layer].columns(index))
        return self._columns[1]

    def _matrix(self, weight: torch.Tensor, bias: torch.Tensor) -> Any:
        """weight (out, in) and bias (out,) as the products take them (an addmm and a columns method)."""
        return _FloatMatrix.of(weight, bias, self.dtype)

    def linear(self, inputs: torch.Tensor, matrix: Any) -> torch.Tensor:
        """inputs @ weight + bias, computed in the small dtype and returned in the inputs' dtype."""
        flat = inputs.reshape(-1, inputs.size(-1))
        rows = flat.size(0)
        padding = -rows % self.ROWS
        if padding:
            flat = F.pad(flat, (0, 0, 0, padding))
        product = matrix.addmm(flat)
        return product[:rows].to(inputs.dtype).view(*inputs.shape[:-1], -1)

    def lstm_cell(self, layer: int, inputs: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """torch.lstm_cell's arithmetic (gates in PyTorch's order i, f, g, o), the product in the small dtype."""
        gates = self.linear(torch.cat([inputs, h], dim=1), self.cell[layer])
        i, f, g, o = gates.chunk(4, dim=1)
        cell = torch.sigmoid(f).mul_(c).add_(torch.sigmoid(i).mul_(fast_tanh(g)))
        return torch.sigmoid(o).mul_(fast_tanh(cell)), cell

    def gru_cell(self, layer: int, inputs: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """torch.gru_cell's arithmetic (gates r, z, n), the products in the small dtype."""
        ih, hh = self.cell[layer]
        r_i, z_i, n_i = self.linear(inputs, ih).chunk(3, dim=1)
        r_h, z_h, n_h = self.linear(h, hh).chunk(3, dim=1)
        r, z = torch.sigmoid(r_i + r_h), torch.sigmoid(z_i + z_h)
        n = fast_tanh(n_i + r * n_h)
        return n + z * (h - n)


class _Int8Products(_Products):
    """The products in int8 (Int8Matrix): weights quantized per output row on entry, inputs per row at
    every product. torch._int_mm compiles no kernel per shape, so rows are not padded."""

    ROWS = 1

    def _matrix(self, weight: torch.Tensor, bias: torch.Tensor) -> Int8Matrix:
        return Int8Matrix.of(weight, bias)


_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class LSTMDecoder(DecoderNetwork):
    """Recurrent decoder (LSTM or GRU) with optional attention, peeky context and Luong input feeding.

    The classic models, by their settings: the plain encoder-decoder is `attention: none` (the encoder's final
    state is the only context); the peeky decoder adds `peeky: true`; Luong attention is the default
    (`general`); Joey NMT's and OpenNMT-py's default adds `input_feeding: true`. Sizes: the state is
    `hidden_size`; with attention the output layer reads tanh(W [h; context]) of that size, without it h; with
    `peeky` the encoder's summary is appended to both the input and the output layer's input.
    """

    name = "lstm"
    params = (
        Param("hidden_size", int, 256, "size of the recurrent state", min=1, max=8192),
        Param("layers", int, 1, "number of stacked recurrent layers", min=1, max=32),
        Param(
            "dropout",
            float,
            0.1,
            "dropout on the target embeddings, between stacked layers and before the output layer",
            min=0.0,
            max=0.9,
        ),
        Param("cell", str, "lstm", "the recurrent cell", choices=("lstm", "gru")),
        Param(
            "attention",
            str,
            "general",
            "the attention scorer queried with the current state (Luong), or none: the encoder's final state "
            "is then the only context",
            nullable=True,
            family="attention",
        ),
        Param(
            "peeky",
            bool,
            False,
            "feed the encoder's summary (the top layer of its final state; without one, the mean of the source "
            "states) into every step's input and into the output layer",
        ),
        Param(
            "input_feeding",
            bool,
            False,
            "Luong input feeding: the previous attentional vector joins each input (needs attention; training "
            "then steps through the positions)",
        ),
        Param(
            "init",
            str,
            "final",
            "how the state starts: final: the encoder's final state (through a tanh bridge when the sizes "
            "differ; without one, the mean of the source states); bridge: always through the bridge; zero: zeros",
            choices=("final", "bridge", "zero"),
        ),
        Param(
            "tie_embeddings",
            bool,
            False,
            "the output layer shares the target embeddings' weights (its input size must equal embedding_dim)",
        ),
    )

    def __init__(
        self,
        embedding_dim: int,
        vocab_size: int,
        memory_size: int,
        pad_index: int,
        attention: AttentionBuilder | None,
        hidden_size: int = 256,
        layers: int = 1,
        dropout: float = 0.1,
        cell: str = "lstm",
        peeky: bool = False,
        input_feeding: bool = False,
        init: str = "final",
        tie_embeddings: bool = False,
    ) -> None:
        super().__init__()
        if input_feeding and attention is None:
            raise ParamError(
                "input_feeding", "input feeding feeds the previous attentional vector: it needs attention (not none)"
            )
        self.hidden_size, self.layers, self.cell = hidden_size, layers, cell
        self.peeky, self.input_feeding, self.init = peeky, input_feeding, init
        summary = memory_size if peeky else 0
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        inputs = embedding_dim + summary + (hidden_size if input_feeding else 0)
        self.rnn = rnn(inputs, hidden_size, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.scorer = attention(query_size=hidden_size, key_size=memory_size) if attention is not None else None
        # The encoder's final states start the decoder; a bridge maps them when the sizes differ (or always).
        bridged = init == "bridge" or (init == "final" and memory_size != hidden_size)
        self.bridge = nn.Linear(memory_size, hidden_size) if bridged else None
        self.combine = nn.Linear(hidden_size + memory_size, hidden_size) if self.scorer is not None else None
        features = hidden_size + summary
        self.output = nn.Linear(features, vocab_size)
        if tie_embeddings:
            if features != embedding_dim:
                also = " plus the encoder's output size (peeky)" if peeky else ""
                raise ParamError(
                    "tie_embeddings",
                    f"the output layer's input ({features}: hidden_size{also}) must equal embedding_dim "
                    f"({embedding_dim}) to share its weights; make them equal or set tie_embeddings: false",
                )
            self.output.weight = self.embedding.weight
        self.dropout = nn.Dropout(dropout)
        self._products: _Products | None = None
        self._kept: KeptCopies[_Products] = KeptCopies()  # the last copies made, with what they were made of
        self._candidates: torch.Tensor | None = None  # within restricted_output: the target tokens scored
        self._restricted: tuple[torch.Tensor, torch.Tensor] | None = None  # the output layer's rows of them

    # --- per batch and start ---------------------------------------------------------

    def prepare(self, memory: Memory) -> Memory:
        """Attention keys (scorer.prepare) and, when peeky, the summary vector (batch, K)."""
        prepared = {}
        if self.scorer is not None:
            prepared["keys"] = self.scorer.prepare(memory.states)
            prepared["padding"] = ~memory.mask  # inverted once per batch, not at every step
        if self.peeky:
            prepared["summary"] = _summary(memory)
        return memory.with_prepared(**prepared) if prepared else memory

    def start(self, memory: Memory) -> RecurrentState:
        """The state before `<s>`: (layers, batch, hidden_size) tensors as `init` says; feed zeros."""
        batch, size = memory.batch_size, self.hidden_size
        feed = memory.states.new_zeros(batch, size) if self.input_feeding else None
        if self.init == "zero":
            zeros = memory.states.new_zeros(self.layers, batch, size)
            return RecurrentState(zeros, zeros if self.cell == "lstm" else None, feed)
        h, c = _final(memory)
        h = self._fit(h)
        if self.cell == "gru":
            return RecurrentState(h, None, feed)
        return RecurrentState(h, self._fit(c) if c is not None else torch.zeros_like(h), feed)

    def _fit(self, state: torch.Tensor) -> torch.Tensor:
        """(encoder layers, batch, K) -> (layers, batch, hidden_size): the top `layers` layers (the top one
        repeated when the encoder has fewer), through the bridge when there is one."""
        have = state.size(0)
        if have >= self.layers:
            state = state[have - self.layers :]
        else:
            state = torch.cat([state, state[-1:].expand(self.layers - have, -1, -1)])
        if self.bridge is not None:
            state = torch.tanh(self.bridge(state))
        return state.contiguous()

    def reorder_state(self, state: RecurrentState, index: torch.Tensor) -> RecurrentState:
        """Rows of h and c are their dimension 1 (layer first, as torch's RNNs keep them), of feed dimension 0."""
        return RecurrentState(
            state.h.index_select(1, index),
            state.c.index_select(1, index) if state.c is not None else None,
            state.feed.index_select(0, index) if state.feed is not None else None,
        )

    # --- teacher forcing -------------------------------------------------------------

    def forward(self, target_in: torch.Tensor, memory: Memory, positions: torch.Tensor | None = None) -> torch.Tensor:
        """target_in (batch, tgt_len) -> logits (batch, tgt_len, V), or (positions.sum(), V) with `positions`."""
        embedded = self.dropout(self.embedding(target_in))
        state = self.start(memory)
        if self.input_feeding:
            attentional = self._fed(embedded, state, memory)
        else:
            inputs = self._with_summary(embedded, memory)
            outputs, _ = self.rnn(inputs, state.h if state.c is None else (state.h, state.c))
            attentional = self.attend(outputs, memory)[0] if self.scorer is not None else outputs
        features = self._with_summary(attentional, memory)
        if positions is not None:
            features = features[positions]
        return self.output(self.dropout(features))

    def _with_summary(self, inputs: torch.Tensor, memory: Memory) -> torch.Tensor:
        """inputs (batch, tgt_len, n) -> (batch, tgt_len, n + K) with the summary at every position when peeky."""
        if not self.peeky:
            return inputs
        summary = memory.prepared["summary"]
        return torch.cat([inputs, summary.unsqueeze(1).expand(-1, inputs.size(1), -1)], dim=-1)

    def _fed(self, embedded: torch.Tensor, state: RecurrentState, memory: Memory) -> torch.Tensor:
        """Input feeding, position by position: embedded (batch, tgt_len, E) -> attentional (batch, tgt_len, H).

        Kept lean: per position one torch.lstm_cell (or gru_cell) per layer on the module's own weights, the
        attention of one query per sentence and the attentional layer; the output layer runs once afterwards
        over all positions. (Computing the embeddings' share of the first layer's gates for all positions in
        one product and the rest by hand measured slower than the fused cell: 129 vs 123 ms a dates step.)
        """
        inputs = self._with_summary(embedded, memory)
        feed, outputs = state.feed, []
        for position in range(inputs.size(1)):
            top, h, c = self._cell_step(torch.cat([inputs[:, position], feed], dim=1), state)
            state = RecurrentState(h, c, None)
            feed = self.attend(top.unsqueeze(1), memory)[0].squeeze(1)
            outputs.append(feed)
        return torch.stack(outputs, 1)

    # --- attention --------------------------------------------------------------------

    def attend(self, outputs: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """outputs (batch, n, H), n positions (or k rows) per memory row -> tanh(W [h; context]) (batch, n, H)
        and the attention weights (batch, n, src_len); padding gets exactly zero weight."""
        assert self.scorer is not None and self.combine is not None
        scores = self.scorer.score(outputs, memory.prepared["keys"])
        scores = scores.masked_fill(memory.prepared["padding"].unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights, memory.states)
        tanh = torch.tanh if self._products is None else fast_tanh
        return tanh(self._linear(self.combine, torch.cat([outputs, context], dim=-1))), weights

    # --- one position at a time ---------------------------------------------------------

    def step(
        self, tokens: torch.Tensor, state: RecurrentState, memory: Memory
    ) -> tuple[torch.Tensor, RecurrentState, torch.Tensor | None]:
        """tokens (rows,) -> logits (rows, V), next state, attention (rows, src_len) or None (no attention)."""
        rows, sentences = tokens.size(0), memory.batch_size
        inputs = [self.dropout(self.embedding(tokens))]
        summary = None
        if self.peeky:  # k consecutive rows share a sentence's summary
            summary = memory.prepared["summary"].repeat_interleave(rows // sentences, dim=0)
            inputs.append(summary)
        if state.feed is not None:
            inputs.append(state.feed)
        top, h, c = self._cell_step(torch.cat(inputs, dim=1) if len(inputs) > 1 else inputs[0], state)
        weights = None
        if self.scorer is not None:
            attentional, weights = self.attend(top.reshape(sentences, rows // sentences, -1), memory)
            top, weights = attentional.reshape(rows, -1), weights.reshape(rows, -1)
        features = top if summary is None else torch.cat([top, summary], dim=1)
        logits = self._logits(self.dropout(features))
        return logits, RecurrentState(h, c, top if self.input_feeding else None), weights

    def _cell_step(
        self, inputs: torch.Tensor, state: RecurrentState
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The recurrent layers over one position, with their own weights (the same results as calling the
        module, at less cost per call): inputs (rows, n) -> (top h (rows, H), h and c (layers, rows, H))."""
        hs, cs = [], []
        for layer in range(self.layers):
            if layer and self.training:  # nn.LSTM's dropout between stacked layers
                inputs = F.dropout(inputs, self.rnn.dropout, True)
            if state.c is None:
                if self._products is not None:
                    inputs = self._products.gru_cell(layer, inputs, state.h[layer])
                else:
                    inputs = torch.gru_cell(inputs, state.h[layer], *_cell_weights(self.rnn, layer))
            elif self._products is not None:
                inputs, cell = self._products.lstm_cell(layer, inputs, state.h[layer], state.c[layer])
                cs.append(cell)
            else:
                inputs, cell = torch.lstm_cell(
                    inputs, (state.h[layer], state.c[layer]), *_cell_weights(self.rnn, layer)
                )
                cs.append(cell)
            hs.append(inputs)
        return inputs, torch.stack(hs), torch.stack(cs) if cs else None

    # --- bfloat16 products in decoding ------------------------------------------------

    @property
    def product_dtype(self) -> torch.dtype:
        """The dtype the decoding steps multiply in: the weights' own, unless reduced_products says otherwise."""
        return self._products.dtype if self._products is not None else self.output.weight.dtype

    @contextmanager
    def reduced_products(self, dtype: torch.dtype) -> Iterator[None]:
        """Within: `step` multiplies in `dtype` (bfloat16, fast on CPUs with AMX, or int8) by copies of its
        weight matrices, made here (again only when a weight changed since: `_products_in`); states, attention,
        softmax and the weights themselves keep their dtype.

        Unlike decoding a copy of the model in `dtype`, the elementwise work (slower in bfloat16 on a CPU)
        stays in float32: on 2 cores a beam-5 step of 640 rows took 1.6 ms instead of 2.9. (The encoder has
        reduced_products of its own.)
        """
        if dtype == self.output.weight.dtype:
            yield
            return
        self._products = self._products_in(dtype)
        try:
            yield
        finally:
            self._products = None

    def _products_in(self, dtype: torch.dtype) -> _Products:
        """The copies in `dtype`, kept until a weight changes (KeptCopies)."""
        made = _Int8Products if dtype == torch.int8 else _Products
        return self._kept.get(self, lambda: made(self, dtype), kind=dtype)

    def _linear(self, layer: nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
        return layer(inputs) if self._products is None else self._products.linear(inputs, self._products.layers[layer])

    # --- a vocabulary shortlist in decoding -------------------------------------------

    @contextmanager
    def restricted_output(self, candidates: torch.Tensor) -> Iterator[None]:
        """Within: `step`'s logits cover only the target tokens `candidates` (C,), in that order: the output
        layer multiplies by those rows alone (a batch's vocabulary shortlist), in float32 or within
        reduced_products in its dtype. Each logit is the one the whole layer gives that token."""
        self._candidates = candidates
        self._restricted = (self.output.weight.detach()[candidates], self.output.bias.detach()[candidates])
        try:
            yield
        finally:
            self._candidates = self._restricted = None

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        """features (rows, F) -> the output layer's logits (rows, V), or (rows, C) within restricted_output."""
        if self._candidates is None:
            return self._linear(self.output, features)
        if self._products is not None:
            return self._products.linear(features, self._products.columns(self.output, self._candidates))
        assert self._restricted is not None
        return F.linear(features, *self._restricted)


def _cell_weights(rnn: nn.RNNBase, layer: int) -> tuple[torch.Tensor, ...]:
    """(weight_ih, weight_hh, bias_ih, bias_hh) of one layer of a torch RNN module."""
    return tuple(getattr(rnn, f"{name}_l{layer}") for name in _WEIGHTS)


def _final(memory: Memory) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The encoder's final (h, c), each (layers, batch, K); c None when it gives only h. An encoder without a
    final state: the mean of the real source states, as one layer."""
    final = memory.final
    if final is None:
        return _mean_state(memory).unsqueeze(0), None
    if isinstance(final, torch.Tensor):
        return final, None
    return final[0], final[1] if len(final) > 1 else None


def _summary(memory: Memory) -> torch.Tensor:
    """(batch, K): the top layer of the encoder's final h, or the mean of the real source states."""
    return _final(memory)[0][-1]


def _mean_state(memory: Memory) -> torch.Tensor:
    mask = memory.mask.unsqueeze(-1).to(memory.states.dtype)
    return (memory.states * mask).sum(1) / mask.sum(1).clamp(min=1)


@hookimpl
def transduce_components() -> list[type[DecoderNetwork]]:
    return [LSTMDecoder]
