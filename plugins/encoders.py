"""Built-in encoders: stacked, optionally bidirectional LSTMs with optional residual connections."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from transduce.api import Encoder, EncoderOutput, Param, hookimpl


class LSTMEncoder(Encoder):
    """LSTM over the source; packed sequences, so padding never reaches the states."""

    name = "lstm"
    params = (
        Param("hidden_size", int, 256, "output size per position (both directions together)", min=2),
        Param("layers", int, 1, "number of stacked LSTM layers", min=1),
        Param("bidirectional", bool, True, "read the source in both directions"),
        Param("dropout", float, 0.0, "dropout between stacked layers", min=0.0, max=0.9),
        Param("residual", bool, False, "add each layer's input to its output from layer 2 on (GNMT)"),
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 256,
        layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        directions = 2 if bidirectional else 1
        if hidden_size % directions:
            raise ValueError(f"hidden_size must be even for a bidirectional encoder, got {hidden_size}")
        self.output_size = hidden_size
        self.layers = layers
        self.directions = directions
        self.residual = residual and layers > 1
        per_direction = hidden_size // directions
        if self.residual:
            # One module per layer, so each layer's input can be added to its output.
            sizes = [input_size] + [hidden_size] * (layers - 1)
            self.rnns = nn.ModuleList(
                nn.LSTM(size, per_direction, batch_first=True, bidirectional=bidirectional) for size in sizes
            )
            self.dropout = nn.Dropout(dropout)
        else:
            self.rnn = nn.LSTM(
                input_size,
                per_direction,
                num_layers=layers,
                batch_first=True,
                bidirectional=bidirectional,
                dropout=dropout if layers > 1 else 0.0,
            )

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """embedded (batch, src_len, input_size), lengths (batch,) -> EncoderOutput."""
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        if self.residual:
            packed, (h, c) = self._run_residual(packed)
        else:
            packed, (h, c) = self.rnn(packed)
        states, _ = pad_packed_sequence(packed, batch_first=True, total_length=embedded.size(1))
        return EncoderOutput(states, (self._join_directions(h), self._join_directions(c)))

    def _run_residual(self, packed: PackedSequence) -> tuple[PackedSequence, tuple[torch.Tensor, torch.Tensor]]:
        hs, cs = [], []
        for index, rnn in enumerate(self.rnns):
            out, (h, c) = rnn(packed)
            data = out.data
            if index > 0:
                data = data + packed.data
            if index < len(self.rnns) - 1:
                data = self.dropout(data)
            packed = out._replace(data=data)
            hs.append(h)
            cs.append(c)
        return packed, (torch.cat(hs), torch.cat(cs))

    def _join_directions(self, state: torch.Tensor) -> torch.Tensor:
        """(layers * directions, batch, per_direction) -> (layers, batch, hidden_size)."""
        layers_dirs, batch, size = state.shape
        state = state.view(self.layers, self.directions, batch, size)
        return torch.cat(state.unbind(1), dim=-1)


@hookimpl
def transduce_components() -> list[type[Encoder]]:
    return [LSTMEncoder]
