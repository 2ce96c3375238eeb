"""Built-in encoders: stacked, optionally bidirectional LSTMs (or GRUs) with optional residual connections."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from transduce_builtins.weight_copies import KeptCopies

from transduce.api import Encoder, EncoderOutput, Param, hookimpl

# Packed input of mixed lengths makes PyTorch's CPU LSTM step through time one position at a time, without
# oneDNN's kernels (about half the speed). Sequences of one length need no packing, so on the CPU a training
# batch runs as one oneDNN LSTM call per distinct length; a batch with more distinct lengths than this is
# packed (and on a GPU, where cuDNN runs a packed batch in one call, every batch is). Training batches hold one
# source length where the data allows, and their shapes recur from epoch to epoch. (oneDNN compiles and keeps
# kernels per input shape; the `transduce` command caps how many, see docs/scaling.md.)
MAX_LENGTH_GROUPS = 16


def _packed_pays(embedded: torch.Tensor, groups: int) -> bool:
    """Whether a batch of `groups` distinct lengths runs faster packed than as one oneDNN call per length.

    Decoding in float32 (no gradients) meets new (length, rows) shapes in nearly every batch, and oneDNN
    compiles a kernel for each (about 1.5 ms on 2 cores); the packed path multiplies with MKL and compiles
    nothing. Measured on 2 cores, greedy sentences/s: dates 4.5k -> 5.3k in a fresh process, 5.9k -> 6.1k over
    8k distinct sentences; Multi30K 1.3k -> 1.5k. In bfloat16 the packed path's products go through oneDNN too,
    each step's row count a new kernel, so there the groups stay.
    """
    if groups > MAX_LENGTH_GROUPS:
        return True
    return groups > 1 and not torch.is_grad_enabled() and embedded.dtype == torch.float32


@functools.cache
def native_bfloat16(device: torch.device) -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX); elsewhere oneDNN emulates it, slower
    than float32. Asked at every decoding batch, answered once per device."""
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private in torch 2.x: absent means no
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


Sequences = torch.Tensor | PackedSequence
#: The last states of a recurrent module: (h, c) for an LSTM, (h,) for a GRU; each (layers * directions, batch, n).
Finals = tuple[torch.Tensor, ...]


class LSTMEncoder(Encoder):
    """LSTM (or GRU) over the source, one call per distinct length (or packed), so padding never reaches the states.

    Its final state is (h, c) for an LSTM and h for a GRU, each (layers, batch, hidden_size).
    """

    name = "lstm"
    params = (
        Param("hidden_size", int, 256, "output size per position (both directions together)", min=2, max=8192),
        Param("layers", int, 1, "number of stacked LSTM layers", min=1, max=32),
        Param("bidirectional", bool, True, "read the source in both directions"),
        Param("dropout", float, 0.0, "dropout between stacked layers", min=0.0, max=0.9),
        Param("residual", bool, False, "add each layer's input to its output from layer 2 on (GNMT)"),
        Param("cell", str, "lstm", "the recurrent cell", choices=("lstm", "gru")),
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 256,
        layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        residual: bool = False,
        cell: str = "lstm",
    ) -> None:
        super().__init__()
        directions = 2 if bidirectional else 1
        if hidden_size % directions:
            raise ValueError(f"hidden_size must be even for a bidirectional encoder, got {hidden_size}")
        self.output_size = hidden_size
        self.layers = layers
        self.directions = directions
        self.residual = residual and layers > 1
        self.cell = cell
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        per_direction = hidden_size // directions
        if self.residual:
            # One module per layer, so each layer's input can be added to its output.
            sizes = [input_size] + [hidden_size] * (layers - 1)
            self.rnns = nn.ModuleList(
                rnn(size, per_direction, batch_first=True, bidirectional=bidirectional) for size in sizes
            )
            self.dropout = nn.Dropout(dropout)
        else:
            self.rnn = rnn(
                input_size,
                per_direction,
                num_layers=layers,
                batch_first=True,
                bidirectional=bidirectional,
                dropout=dropout if layers > 1 else 0.0,
            )
        self._reduced: nn.Module | None = None  # within reduced_products: bfloat16 copies of the recurrent layers
        self._kept: KeptCopies[nn.Module] = KeptCopies()  # the last copies made, with what they were made of

    @contextmanager
    def reduced_products(self, dtype: torch.dtype) -> Iterator[None]:
        """Within (bf16 and int8 decoding, on a CPU that multiplies bfloat16 natively): the recurrent layers run on
        bfloat16 copies of their weights, and the states come back in float32. PyTorch has no int8 LSTM, so int8
        decoding encodes in bfloat16 too. In bf16 decoding the float32 encoder had taken 44% of
        greedy decoding on dates; packed, a batch of 64 Multi30K-sized sources took 7.1 ms in float32, 3.3 ms so."""
        if dtype not in (torch.bfloat16, torch.int8) or not native_bfloat16(next(self.parameters()).device):
            yield
            return
        self._reduced = self._copies()
        try:
            yield
        finally:
            self._reduced = None

    def _copies(self) -> nn.Module:
        """The recurrent layers in bfloat16, kept until a weight changes (KeptCopies)."""
        recurrent = self.rnns if self.residual else self.rnn
        return self._kept.get(recurrent, lambda: copy.deepcopy(recurrent).to(torch.bfloat16))

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """embedded (batch, src_len, input_size), lengths (batch,) -> EncoderOutput."""
        if embedded.device.type != "cpu":  # cuDNN runs packed batches in one call: grouping only adds launches
            return self._forward_packed(embedded, lengths)
        groups = length_groups(lengths)
        if self._reduced is not None:  # bfloat16 copies, in decoding: packed as float32 decoding is (see _packed_pays)
            reduced = embedded.to(torch.bfloat16)
            encoded = self._forward_packed(reduced, lengths) if len(groups) > 1 else self._by_length(reduced, groups)
            return EncoderOutput(encoded.states.to(embedded.dtype), _cast(encoded.final, embedded.dtype))
        if _packed_pays(embedded, len(groups)):
            return self._forward_packed(embedded, lengths)
        return self._by_length(embedded, groups)

    def _by_length(self, embedded: torch.Tensor, groups: list[tuple[int, torch.Tensor]]) -> EncoderOutput:
        """One oneDNN call per distinct length (`groups`, from length_groups), unpacked."""
        total = embedded.size(1)
        if len(groups) == 1:
            length = groups[0][0]
            states, finals = self._layers(embedded[:, :length])
            states = F.pad(states, (0, 0, 0, total - length))
        else:
            outputs, parts = [], []
            for length, rows in groups:
                out, part = self._layers(embedded.index_select(0, rows.to(embedded.device))[:, :length])
                outputs.append(F.pad(out, (0, 0, 0, total - length)))
                parts.append(part)
            # Back to the batch's order: row i of the batch is row inverse[i] of the concatenated groups.
            inverse = torch.cat([rows for _, rows in groups]).argsort().to(embedded.device)
            states = torch.cat(outputs).index_select(0, inverse)
            finals = tuple(torch.cat(each, dim=1).index_select(1, inverse) for each in zip(*parts, strict=True))
        return EncoderOutput(states, self._final(finals))

    def _forward_packed(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, finals = self._layers(packed)
        assert isinstance(out, PackedSequence)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=embedded.size(1))
        return EncoderOutput(states, self._final(finals))

    def _final(self, finals: Finals) -> tuple[torch.Tensor, ...] | torch.Tensor:
        """(h, c) for an LSTM, h for a GRU, each (layers, batch, hidden_size)."""
        joined = tuple(self._join_directions(state) for state in finals)
        return joined if self.cell == "lstm" else joined[0]

    def _layers(self, inputs: Sequences) -> tuple[Sequences, Finals]:
        recurrent = self._reduced if self._reduced is not None else self.rnns if self.residual else self.rnn
        if not self.residual:
            return _run(recurrent, inputs)
        parts = []
        for index, rnn in enumerate(recurrent):
            out, part = _run(rnn, inputs)
            data = _data(out)
            if index > 0:
                data = data + _data(inputs)
            if index < len(self.rnns) - 1:
                data = self.dropout(data)
            inputs = out._replace(data=data) if isinstance(out, PackedSequence) else data
            parts.append(part)
        return inputs, tuple(torch.cat(each) for each in zip(*parts, strict=True))

    def _join_directions(self, state: torch.Tensor) -> torch.Tensor:
        """(layers * directions, batch, per_direction) -> (layers, batch, hidden_size)."""
        layers_dirs, batch, size = state.shape
        state = state.view(self.layers, self.directions, batch, size)
        return torch.cat(state.unbind(1), dim=-1)


def length_groups(lengths: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """(length, CPU indices of the rows of that length) for each distinct length, shortest first."""
    lengths = lengths.cpu()
    return [(int(length), (lengths == length).nonzero().squeeze(1)) for length in lengths.unique()]


def _run(rnn: nn.RNNBase, inputs: Sequences) -> tuple[Sequences, Finals]:
    """A torch RNN's outputs and its last states as a tuple: (h, c) for an LSTM, (h,) for a GRU."""
    out, final = rnn(inputs)
    return out, final if isinstance(final, tuple) else (final,)


FinalState = tuple[torch.Tensor, ...] | torch.Tensor


def _cast(final: FinalState, dtype: torch.dtype) -> FinalState:
    """A final state (h, c) or h in `dtype`."""
    return final.to(dtype) if isinstance(final, torch.Tensor) else tuple(state.to(dtype) for state in final)


def _data(sequences: Sequences) -> torch.Tensor:
    return sequences.data if isinstance(sequences, PackedSequence) else sequences


@hookimpl
def transduce_components() -> list[type[Encoder]]:
    return [LSTMEncoder]
