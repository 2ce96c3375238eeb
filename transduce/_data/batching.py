"""Turning text pairs into padded index tensors, in length-bucketed batches."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from transduce._data.vocab import Vocabulary


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


def source_tensors(
    sources: Sequence[Sequence[int]], pad_index: int, *, reverse: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(padded sources (batch, src_len), lengths (batch,)).

    Every source the encoder reads passes here, in training and in decoding alike, so this is the one place
    where `reverse` (the recipe's `source.reverse`) turns each source around; padding stays on the right.
    """
    lengths = torch.tensor([len(s) for s in sources], dtype=torch.long)
    return pad([s[::-1] for s in sources] if reverse else sources, pad_index), lengths


def make_batch(pairs: Sequence[EncodedPair], vocab: Vocabulary, *, reverse: bool = False) -> Batch:
    """The training batch of `pairs`; `reverse` turns the sources around (see `source_tensors`)."""
    source, lengths = source_tensors([p.source for p in pairs], vocab.pad_index, reverse=reverse)
    target_in = pad([[vocab.bos_index, *p.target] for p in pairs], vocab.pad_index)
    target_out = pad([[*p.target, vocab.eos_index] for p in pairs], vocab.pad_index)
    tokens = sum(len(p.target) + 1 for p in pairs)
    return Batch(source, lengths, target_in, target_out, tokens)


def training_batches(
    pairs: Sequence[EncodedPair], batch_size: int, rng: random.Random, vocab: Vocabulary, *, reverse: bool = False
) -> list[Batch]:
    """Shuffled batches, each of one source length where the data allows (see `length_buckets`); the same `rng`
    state gives the same batches.

    A bucket of n pairs is cut into ceil(n / batch_size) batches of near-equal size, so every epoch has the same
    few batch shapes: the encoder runs one LSTM call per batch, and oneDNN, which compiles kernels and keeps
    buffers per shape, reuses them (pools of mixed lengths brought new shapes with every batch: 150 MiB more in
    bfloat16 training on dates, and a little slower). Which pairs share a batch, and the order of the batches,
    change with every epoch.
    """
    groups: list[list[int]] = []
    for bucket in length_buckets([len(p.source) for p in pairs], batch_size):
        rng.shuffle(bucket)
        count = _batches_of(len(bucket), batch_size)
        groups.extend(bucket[i * len(bucket) // count : (i + 1) * len(bucket) // count] for i in range(count))
    rng.shuffle(groups)
    return [make_batch([pairs[i] for i in group], vocab, reverse=reverse) for group in groups]


def batches_per_epoch(pairs: Sequence[EncodedPair], batch_size: int) -> int:
    """How many batches `training_batches` cuts `pairs` into: the same in every epoch (only their order and
    members change)."""
    return sum(_batches_of(len(b), batch_size) for b in length_buckets([len(p.source) for p in pairs], batch_size))


def _batches_of(pairs: int, batch_size: int) -> int:
    """The batches a bucket of `pairs` pairs is cut into: ceil(pairs / batch_size), of near-equal sizes."""
    return -(-pairs // batch_size)


def length_buckets(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by length, shortest first: one length per bucket, except that lengths with fewer than
    half a batch of members join the next ones until the bucket holds half a batch (rare lengths at the tails
    would otherwise make tiny batches)."""
    members: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        members.setdefault(length, []).append(index)
    buckets: list[list[int]] = []
    current: list[int] = []
    for length in sorted(members):
        current.extend(members[length])
        if 2 * len(current) >= batch_size:
            buckets.append(current)
            current = []
    if current:  # a short tail joins the last bucket
        if buckets:
            buckets[-1].extend(current)
        else:
            buckets.append(current)
    return buckets


def by_length(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (for decoding; callers restore the order)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
