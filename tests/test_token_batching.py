"""Token batches (train.batch_tokens): filled up to a budget of padded tokens, bucketed, seeded, nothing dropped;
and the accumulation shares that weigh each batch's loss within an optimizer step."""

from __future__ import annotations

import random

import pytest
from test_batching import VOCAB, make_pairs, pair_ids

from transduce._data.batching import (
    Batch,
    EncodedPair,
    accumulation_shares,
    make_batch,
    padded_width,
    token_groups,
    training_batches,
)


def target_padding(batches: list[Batch]) -> float:
    return 1 - sum(b.target_tokens for b in batches) / sum(b.target_out.numel() for b in batches)


def padded_tokens(batch: Batch) -> int:
    """What the budget counts: rows x the longer side's padded length (target_out holds the target and `</s>`)."""
    return batch.source.size(0) * max(batch.source.size(1), batch.target_out.size(1))


@pytest.mark.parametrize(("count", "budget"), [(1, 50), (37, 60), (450, 200), (1000, 37)])
def test_token_batches_cover_every_pair_exactly_once_within_the_budget(count: int, budget: int) -> None:
    pairs = make_pairs(count)
    batches = training_batches(pairs, 64, random.Random(0), VOCAB, batch_tokens=budget)
    assert sorted(i for b in batches for i in pair_ids(b)) == list(range(count))
    for batch in batches:
        assert padded_tokens(batch) <= budget or batch.source.size(0) == 1


def test_a_pair_longer_than_the_budget_gets_a_batch_of_its_own_and_is_not_dropped() -> None:
    pairs = make_pairs(200, longest=10)
    pairs.append(EncodedPair([100 + len(pairs), *[5] * 59], [6] * 30))  # 60 tokens wide
    batches = training_batches(pairs, 64, random.Random(0), VOCAB, batch_tokens=40)
    alone = [b for b in batches if len(pairs) - 1 in pair_ids(b)]
    assert len(alone) == 1 and pair_ids(alone[0]) == [len(pairs) - 1]
    assert padded_tokens(alone[0]) == 60
    assert sorted(i for b in batches for i in pair_ids(b)) == list(range(len(pairs)))


def test_the_budget_counts_the_longer_side_with_padding() -> None:
    assert padded_width(EncodedPair([1, 2, 3, 4], [5])) == 4  # the source is longer
    assert padded_width(EncodedPair([1], [5, 6, 7])) == 4  # the target and its </s>
    # Two pairs of width 4 and 6 make a batch of 2 x 6 = 12 padded tokens: a budget of 11 splits them.
    pairs = [EncodedPair([100, 7, 7], [5, 5, 5]), EncodedPair([101, 7, 7], [5, 5, 5, 5, 5])]
    assert [len(g) for g in token_groups(pairs, 12, random.Random(0))] == [2]
    assert sorted(len(g) for g in token_groups(pairs, 11, random.Random(0))) == [1, 1]


def test_token_batches_fill_the_budget_and_carry_less_target_padding_than_sentence_batches() -> None:
    pairs = make_pairs(2000)
    sentence = training_batches(pairs, 16, random.Random(0), VOCAB)
    token = training_batches(pairs, 16, random.Random(0), VOCAB, batch_tokens=16 * 25)
    # Most batches come close to the budget: pairs are ordered by target length within a source-length bucket.
    filled = sorted(padded_tokens(b) / (16 * 25) for b in token)
    assert filled[len(filled) // 2] > 0.85
    assert target_padding(token) < 0.5 * target_padding(sentence)


def test_token_batches_hold_one_source_length_where_the_data_has_enough_pairs() -> None:
    pairs = [EncodedPair([100 + i] + [5] * (i % 4), [6] * (i % 7)) for i in range(400)]
    for batch in training_batches(pairs, 64, random.Random(1), VOCAB, batch_tokens=60):
        assert int(batch.lengths.min()) == int(batch.lengths.max())


def test_token_batches_follow_the_seed_and_change_between_epochs() -> None:
    pairs = make_pairs(500)
    order = lambda batches: [pair_ids(b) for b in batches]  # noqa: E731
    rng = random.Random(7)
    epoch1 = order(training_batches(pairs, 8, rng, VOCAB, batch_tokens=150))
    epoch2 = order(training_batches(pairs, 8, rng, VOCAB, batch_tokens=150))
    assert epoch1 == order(training_batches(pairs, 8, random.Random(7), VOCAB, batch_tokens=150))
    assert epoch1 != epoch2
    # Which pairs share a batch changes too, not only the order of the batches.
    assert {frozenset(b) for b in epoch1} != {frozenset(b) for b in epoch2}


def test_accumulation_shares_weigh_each_batch_by_its_tokens_within_its_step() -> None:
    pairs = make_pairs(50, seed=3)
    batches = [make_batch(pairs[i : i + 10], VOCAB) for i in range(0, 50, 10)]  # 5 batches
    assert accumulation_shares(batches, 1) == [1.0] * 5
    shares = accumulation_shares(batches, 2)  # steps of batches (0, 1), (2, 3) and (4)
    tokens = [b.target_tokens for b in batches]
    assert shares[0] == tokens[0] / (tokens[0] + tokens[1]) and shares[3] == tokens[3] / (tokens[2] + tokens[3])
    assert shares[4] == 1.0
    assert sum(shares[:2]) == pytest.approx(1.0) and sum(shares[2:4]) == pytest.approx(1.0)
    assert accumulation_shares(batches, 8) == pytest.approx([t / sum(tokens) for t in tokens])
