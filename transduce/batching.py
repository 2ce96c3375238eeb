"""Turning text pairs into padded index tensors, in length-bucketed batches."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from transduce.vocab import Vocabulary

# Batches are cut from pools of this many batches sorted by length, so batches
# hold sentences of similar length (little padding) yet vary between epochs.
POOL_BATCHES = 50


@dataclass
class Batch:
    """source (batch, src_len); lengths (batch,) on the CPU; target_in/out (batch, tgt_len).

    target_in starts with `<s>`, target_out ends with `</s>`; both padded with `<pad>`.
    """

    source: torch.Tensor
    lengths: torch.Tensor
    target_in: torch.Tensor
    target_out: torch.Tensor
    target_tokens: int

    def to(self, device: torch.device) -> Batch:
        if device.type == "cpu":
            return self
        move = lambda t: t.pin_memory().to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.source), self.lengths, move(self.target_in), move(self.target_out), self.target_tokens)


@dataclass
class EncodedPair:
    source: list[int]
    target: list[int]


def pad(sequences: Sequence[Sequence[int]], pad_index: int) -> torch.Tensor:
    """Right-pad index lists into a (batch, longest) tensor."""
    longest = max(len(s) for s in sequences)
    # One tensor from nested lists: far cheaper than a tensor and a copy per row.
    return torch.tensor([[*s, *[pad_index] * (longest - len(s))] for s in sequences], dtype=torch.long)


def source_tensors(sources: Sequence[Sequence[int]], pad_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(padded sources (batch, src_len), lengths (batch,))."""
    lengths = torch.tensor([len(s) for s in sources], dtype=torch.long)
    return pad(sources, pad_index), lengths


def make_batch(pairs: Sequence[EncodedPair], vocab: Vocabulary) -> Batch:
    source, lengths = source_tensors([p.source for p in pairs], vocab.pad_index)
    target_in = pad([[vocab.bos_index, *p.target] for p in pairs], vocab.pad_index)
    target_out = pad([[*p.target, vocab.eos_index] for p in pairs], vocab.pad_index)
    tokens = sum(len(p.target) + 1 for p in pairs)
    return Batch(source, lengths, target_in, target_out, tokens)


def training_batches(
    pairs: Sequence[EncodedPair], batch_size: int, rng: random.Random, vocab: Vocabulary
) -> list[Batch]:
    """Shuffled, length-bucketed batches; the same `rng` state gives the same batches."""
    order = list(range(len(pairs)))
    rng.shuffle(order)
    pool = batch_size * POOL_BATCHES
    groups: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: (len(pairs[i].source), len(pairs[i].target)))
        groups.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(groups)
    return [make_batch([pairs[i] for i in group], vocab) for group in groups]


def by_length(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (for decoding; callers restore the order)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
