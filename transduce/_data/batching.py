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
    pairs: Sequence[EncodedPair],
    batch_size: int,
    rng: random.Random,
    vocab: Vocabulary,
    *,
    reverse: bool = False,
    batch_tokens: int | None = None,
) -> list[Batch]:
    """Shuffled batches, each of one source length where the data allows (see `length_buckets`); the same `rng`
    state gives the same batches.

    A bucket of n pairs is cut into ceil(n / batch_size) batches of near-equal size, so every epoch has the same
    few batch shapes: the encoder runs one LSTM call per batch, and oneDNN, which compiles kernels and keeps
    buffers per shape, reuses them (pools of mixed lengths brought new shapes with every batch: 150 MiB more in
    bfloat16 training on dates, and a little slower). Which pairs share a batch, and the order of the batches,
    change with every epoch.

    With `batch_tokens`, batches are filled up to that many padded tokens instead (see `token_groups`);
    `batch_size` is then unused.
    """
    if batch_tokens is None:
        groups = sentence_groups([len(p.source) for p in pairs], batch_size, rng)
    else:
        groups = token_groups(pairs, batch_tokens, rng)
    rng.shuffle(groups)
    return [make_batch([pairs[i] for i in group], vocab, reverse=reverse) for group in groups]


def batches_per_epoch(pairs: Sequence[EncodedPair], batch_size: int, batch_tokens: int | None = None) -> int:
    """How many batches `training_batches` cuts `pairs` into. Sentence batches: the same in every epoch (only
    their order and members change). Token batches: those of one shuffle, as the count may move by a batch or
    two from epoch to epoch (a schedule that needs the run's length takes it as an estimate)."""
    if batch_tokens is None:
        return len(sentence_groups([len(p.source) for p in pairs], batch_size, random.Random(0)))
    return len(token_groups(pairs, batch_tokens, random.Random(0)))


def sentence_groups(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Indices of up to `batch_size` pairs per group, each bucket (see `length_buckets`) shuffled and cut into
    near-equal groups; the groups come bucket by bucket (the caller shuffles them)."""
    groups: list[list[int]] = []
    for bucket in length_buckets(lengths, batch_size):
        rng.shuffle(bucket)
        count = -(-len(bucket) // batch_size)
        groups.extend(bucket[i * len(bucket) // count : (i + 1) * len(bucket) // count] for i in range(count))
    return groups


def padded_width(pair: EncodedPair) -> int:
    """The positions a pair takes in a batch, padding included: its longer side (the target with its `</s>`)."""
    return max(len(pair.source), len(pair.target) + 1)


def token_groups(pairs: Sequence[EncodedPair], budget: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped so that rows x the widest pair's `padded_width` stays within `budget` tokens, as
    fairseq's --max-tokens and Joey NMT's token batches count them (padding included, the longer side).

    Pairs are bucketed by source length as sentence batches are (a bucket closes at half the budget). Within a
    bucket the pairs are shuffled, then ordered by target length (a stable sort: pairs of equal lengths stay in
    shuffled order) and cut greedily, so batches carry little target padding and which pairs share one still
    changes every epoch. A pair wider than the budget gets a batch of its own: nothing is dropped.
    """
    widths = [padded_width(p) for p in pairs]
    groups: list[list[int]] = []
    for bucket in length_buckets([len(p.source) for p in pairs], budget, widths):
        rng.shuffle(bucket)
        bucket.sort(key=lambda i: len(pairs[i].target))
        group: list[int] = []
        widest = 0
        for index in bucket:
            if group and (len(group) + 1) * max(widest, widths[index]) > budget:
                groups.append(group)
                group, widest = [], 0
            group.append(index)
            widest = max(widest, widths[index])
        groups.append(group)
    return groups


def length_buckets(lengths: Sequence[int], batch_size: int, widths: Sequence[int] | None = None) -> list[list[int]]:
    """Indices grouped by length, shortest first: one length per bucket, except that lengths with fewer than
    half a batch of members join the next ones until the bucket holds half a batch (rare lengths at the tails
    would otherwise make tiny batches).

    With `widths` (each index's padded width), `batch_size` is a token budget and a bucket holds half a batch
    once its members x its widest reach half of it."""
    members: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        members.setdefault(length, []).append(index)
    buckets: list[list[int]] = []
    current: list[int] = []
    widest = 1
    for length in sorted(members):
        current.extend(members[length])
        if widths is not None:
            widest = max(widest, *(widths[i] for i in members[length]))
        if 2 * len(current) * widest >= batch_size:
            buckets.append(current)
            current, widest = [], 1
    if current:  # a short tail joins the last bucket
        if buckets:
            buckets[-1].extend(current)
        else:
            buckets.append(current)
    return buckets


def accumulation_shares(batches: Sequence[Batch], accumulate: int) -> list[float]:
    """Each batch's share of the target tokens of its optimizer step's batches (`accumulate` consecutive ones,
    the epoch's last step perhaps fewer).

    A batch's mean loss times its share, summed over the step, is the mean loss per token of all of them: the
    gradient one batch of their pairs would give. With `accumulate` 1 every share is exactly 1.0.
    """
    shares: list[float] = []
    for start in range(0, len(batches), accumulate):
        group = batches[start : start + accumulate]
        total = sum(batch.target_tokens for batch in group)
        shares.extend(batch.target_tokens / total for batch in group)
    return shares


def by_length(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (for decoding; callers restore the order)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
