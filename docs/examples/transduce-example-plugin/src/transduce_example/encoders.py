"""The `gru` encoder: stacked, optionally bidirectional GRUs over the embedded source."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transduce.api import Encoder, EncoderOutput, Param


class GRUEncoder(Encoder):
    """GRU over the source (packed, so padding never reaches the states); its final state is h alone."""

    name = "gru"
    params = (
        Param("hidden_size", int, 256, "output size per position (both directions together)", min=2),
        Param("layers", int, 1, "number of stacked GRU layers", min=1),
        Param("bidirectional", bool, True, "read the source in both directions"),
        Param("dropout", float, 0.0, "dropout between stacked layers (needs layers >= 2)", min=0.0, max=0.9),
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 256,
        layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        directions = 2 if bidirectional else 1
        if hidden_size % directions:
            # A ValueError from the constructor becomes a recipe error at model.encoder.
            raise ValueError(f"hidden_size must be even for a bidirectional encoder, got {hidden_size}")
        self.output_size = hidden_size  # the contract: output_size and layers are set by the constructor
        self.layers = layers
        self.directions = directions
        self.rnn = nn.GRU(
            input_size,
            hidden_size // directions,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """embedded (batch, src_len, input_size), lengths (batch,) -> states (batch, src_len, hidden_size),
        final h (layers, batch, hidden_size)."""
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, h = self.rnn(packed)
        states, _ = pad_packed_sequence(output, batch_first=True, total_length=embedded.size(1))
        # A GRU has no cell state: the final state is h alone, which the built-in `lstm` decoder network reads
        # as its starting h (with a zero cell when its own cell is an LSTM).
        return EncoderOutput(states, self._join_directions(h))

    def _join_directions(self, h: torch.Tensor) -> torch.Tensor:
        """(layers * directions, batch, per_direction) -> (layers, batch, hidden_size)."""
        _, batch, size = h.shape
        return torch.cat(h.view(self.layers, self.directions, batch, size).unbind(1), dim=-1)
