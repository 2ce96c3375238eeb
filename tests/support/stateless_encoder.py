"""A test-support plugin: the `mean` encoder, which has no final state (as a convolutional or Transformer
encoder has none): each position's state is a projection of its embedding plus the mean of the sentence's."""

from __future__ import annotations

import torch
from torch import nn

from transduce.api import Encoder, EncoderOutput, Param, hookimpl


class MeanEncoder(Encoder):
    """Position-wise projection mixed with the sentence mean; no final state (EncoderOutput.final is None)."""

    name = "mean"
    params = (Param("size", int, 8, "output size per position", min=1, max=64),)

    def __init__(self, input_size: int, size: int = 8) -> None:
        super().__init__()
        self.output_size, self.layers = size, 1
        self.project = nn.Linear(input_size, size)

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """embedded (batch, src_len, E) -> states (batch, src_len, size), final None."""
        states = self.project(embedded)
        mask = (torch.arange(states.size(1), device=states.device) < lengths.to(states.device).unsqueeze(1)).unsqueeze(
            -1
        )
        mean = (states * mask).sum(1, keepdim=True) / lengths.to(states.device).view(-1, 1, 1)
        return EncoderOutput(torch.tanh(states + mean), None)


@hookimpl
def transduce_components() -> list[type[Encoder]]:
    return [MeanEncoder]
