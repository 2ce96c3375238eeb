"""Tests of batching: padding, teacher-forcing targets, length-bucketed shuffling, decoding order."""

from __future__ import annotations

import random

import pytest
import torch

from transduce._data.batching import (
    Batch,
    EncodedPair,
    by_length,
    length_buckets,
    make_batch,
    pad,
    source_tensors,
    training_batches,
)
from transduce._data.vocab import Vocabulary

VOCAB = Vocabulary([])  # only the specials: batching needs just their indices
PAD, UNK, BOS, EOS = VOCAB.pad_index, VOCAB.unk_index, VOCAB.bos_index, VOCAB.eos_index


def make_pairs(count: int, seed: int = 0, longest: int = 40) -> list[EncodedPair]:
    """Pairs of random lengths; the first source token is 100 + the pair's index, to find it again."""
    rng = random.Random(seed)
    pairs = []
    for i in range(count):
        source = [100 + i] + [rng.randint(4, 50) for _ in range(rng.randint(0, longest - 1))]
        target = [rng.randint(4, 50) for _ in range(rng.randint(0, longest))]
        pairs.append(EncodedPair(source, target))
    return pairs


def pair_ids(batch: Batch) -> list[int]:
    return [int(x) - 100 for x in batch.source[:, 0]]


def padding_fraction(batches: list[Batch]) -> float:
    real = sum(int(b.lengths.sum()) for b in batches)
    total = sum(b.source.numel() for b in batches)
    return 1 - real / total


def test_training_batches_are_the_same_for_the_same_rng_seed() -> None:
    pairs = make_pairs(300)
    first = training_batches(pairs, 8, random.Random(7), VOCAB)
    second = training_batches(pairs, 8, random.Random(7), VOCAB)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a.source, b.source) and torch.equal(a.target_in, b.target_in)
        assert torch.equal(a.lengths, b.lengths) and torch.equal(a.target_out, b.target_out)


def test_training_batches_change_with_the_seed_and_between_epochs() -> None:
    pairs = make_pairs(300)
    order = lambda batches: [pair_ids(b) for b in batches]  # noqa: E731
    rng = random.Random(7)
    epoch1 = order(training_batches(pairs, 8, rng, VOCAB))
    epoch2 = order(training_batches(pairs, 8, rng, VOCAB))
    other_seed = order(training_batches(pairs, 8, random.Random(8), VOCAB))
    assert epoch1 != epoch2
    assert epoch1 != other_seed


@pytest.mark.parametrize(("count", "batch_size"), [(1, 4), (37, 4), (450, 8), (1001, 3)])
def test_training_batches_cover_every_pair_exactly_once(count: int, batch_size: int) -> None:
    pairs = make_pairs(count)
    batches = training_batches(pairs, batch_size, random.Random(0), VOCAB)
    ids = [i for batch in batches for i in pair_ids(batch)]
    assert sorted(ids) == list(range(count))
    assert all(1 <= batch.source.size(0) <= batch_size for batch in batches)
    # Each bucket of n pairs makes ceil(n / batch_size) batches: at most one more batch per bucket than a cut of
    # all pairs into full batches would make.
    buckets = length_buckets([len(p.source) for p in pairs], batch_size)
    assert len(batches) == sum(-(-len(bucket) // batch_size) for bucket in buckets)
    assert len(batches) <= -(-count // batch_size) + len(buckets)


def test_training_batches_hold_one_source_length_where_there_are_enough_pairs() -> None:
    # 3 lengths with many pairs each, and a tail of rare lengths that shares batches.
    rng = random.Random(0)
    lengths = [5] * 50 + [9] * 33 + [12] * 17 + [20, 21, 23]
    rng.shuffle(lengths)
    pairs = [EncodedPair([100 + i] + [7] * (n - 1), [8] * rng.randint(1, 9)) for i, n in enumerate(lengths)]
    batches = training_batches(pairs, 8, random.Random(1), VOCAB)
    mixed = [b for b in batches if len(set(b.lengths.tolist())) > 1]
    assert all(set(b.lengths.tolist()) <= {12, 20, 21, 23} for b in mixed)  # only the tail joins a bucket
    # Near-equal batches: a bucket of 50 makes 7 batches of 7 or 8 rows (never one of 2), of 33 five of 6 or 7.
    sizes = lambda n: sorted(b.source.size(0) for b in batches if set(b.lengths.tolist()) == {n})  # noqa: E731
    assert sizes(5) == [7] * 6 + [8]
    assert sizes(9) == [6] * 2 + [7] * 3


def test_length_buckets_group_by_length_and_merge_rare_lengths() -> None:
    lengths = [3, 3, 3, 3, 7, 8, 8, 9, 9, 9, 9, 2]
    buckets = length_buckets(lengths, 8)
    assert [sorted(lengths[i] for i in bucket) for bucket in buckets] == [[2, 3, 3, 3, 3], [7, 8, 8, 9, 9, 9, 9]]
    assert sorted(i for bucket in buckets for i in bucket) == list(range(len(lengths)))
    assert length_buckets([4, 4, 6], 100) == [[0, 1, 2]]  # too few for half a batch: one bucket
    assert length_buckets([], 8) == []


def test_training_batches_hold_pairs_of_similar_length() -> None:
    pairs = make_pairs(1000, longest=40)
    bucketed = training_batches(pairs, 8, random.Random(0), VOCAB)
    order = list(range(len(pairs)))
    random.Random(0).shuffle(order)
    shuffled = [make_batch([pairs[i] for i in order[s : s + 8]], VOCAB) for s in range(0, len(order), 8)]
    assert padding_fraction(shuffled) > 0.3
    assert padding_fraction(bucketed) < padding_fraction(shuffled) / 5


def test_training_batches_come_in_shuffled_order_not_sorted_by_length() -> None:
    pairs = make_pairs(300)
    batches = training_batches(pairs, 8, random.Random(0), VOCAB)
    shortest = [int(b.lengths.min()) for b in batches]
    assert shortest != sorted(shortest)
    assert shortest != sorted(shortest, reverse=True)


def test_batch_targets_are_shifted_for_teacher_forcing() -> None:
    pairs = [EncodedPair([5, 6, 7], [10, 11]), EncodedPair([8], [12, 13, 14, 15]), EncodedPair([9, 9], [])]
    batch = make_batch(pairs, VOCAB)
    assert batch.target_in.tolist() == [
        [BOS, 10, 11, PAD, PAD],
        [BOS, 12, 13, 14, 15],
        [BOS, PAD, PAD, PAD, PAD],
    ]
    assert batch.target_out.tolist() == [
        [10, 11, EOS, PAD, PAD],
        [12, 13, 14, 15, EOS],
        [EOS, PAD, PAD, PAD, PAD],
    ]
    assert batch.source.tolist() == [[5, 6, 7], [8, PAD, PAD], [9, 9, PAD]]
    assert batch.lengths.tolist() == [3, 1, 2]
    assert batch.target_tokens == 3 + 5 + 1


def test_training_batch_rows_match_their_pairs() -> None:
    pairs = make_pairs(120, seed=3)
    for batch in training_batches(pairs, 5, random.Random(1), VOCAB):
        assert batch.source.dtype == batch.target_in.dtype == batch.target_out.dtype == torch.long
        assert batch.lengths.device.type == "cpu"
        assert batch.target_tokens == int((batch.target_out != PAD).sum())
        for row, i in enumerate(pair_ids(batch)):
            source, target = pairs[i].source, pairs[i].target
            assert batch.lengths[row] == len(source)
            assert batch.source[row, : len(source)].tolist() == source
            assert torch.all(batch.source[row, len(source) :] == PAD)
            assert batch.target_in[row, : len(target) + 1].tolist() == [BOS, *target]
            assert batch.target_out[row, : len(target) + 1].tolist() == [*target, EOS]
            assert torch.all(batch.target_out[row, len(target) + 1 :] == PAD)


def test_batch_to_cpu_is_the_same_batch() -> None:
    batch = make_batch(make_pairs(3), VOCAB)
    assert batch.to(torch.device("cpu")) is batch


def test_pad_right_pads_to_the_longest_sequence() -> None:
    assert pad([[1], [2, 3, 4], []], pad_index=9).tolist() == [[1, 9, 9], [2, 3, 4], [9, 9, 9]]


def test_source_tensors_returns_the_real_lengths() -> None:
    source, lengths = source_tensors([[5, 6], [7], [8, 9, 10]], PAD)
    assert lengths.tolist() == [2, 1, 3]
    assert lengths.dtype == torch.long
    assert source.shape == (3, 3)


@pytest.mark.parametrize(("count", "batch_size"), [(0, 3), (1, 3), (10, 3), (10, 10), (25, 4)])
def test_by_length_groups_every_index_once_in_order_of_length(count: int, batch_size: int) -> None:
    rng = random.Random(count)
    lengths = [rng.randint(1, 30) for _ in range(count)]
    groups = by_length(lengths, batch_size)
    flat = [i for group in groups for i in group]
    assert sorted(flat) == list(range(count))
    assert all(1 <= len(group) <= batch_size for group in groups)
    assert len(groups) == -(-count // batch_size)
    assert [lengths[i] for i in flat] == sorted(lengths)
