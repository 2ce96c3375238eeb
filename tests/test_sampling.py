"""Tests of sampling: seeded reproducibility, top_k, temperature, batching, scores and the length limits."""

from __future__ import annotations

import pytest
import torch
from test_greedy import (
    MIXED_LENGTHS,
    MIXED_LIMITS,
    OTHER,
    build,
    encode,
    favour,
    mixed,
    same_with_and_without_compaction,
    sharpen,
)
from test_inference import teacher_forced_score
from transduce_builtins import search
from transduce_builtins.search import BeamSearch, GreedyDecoding, SampleDecoding

from transduce._model import assembly as pipeline
from transduce._plugins.registry import discover
from transduce.errors import RecipeError

LENGTHS = [4, 1, 6, 2, 3]


def flat(seed: int = 1):  # type: ignore[no-untyped-def]
    """A random model with a flat-ish output distribution (so samples vary) and its memory."""
    model = build(seed)
    return model, encode(model, LENGTHS)


def test_a_seed_gives_the_same_output_whatever_the_global_random_state() -> None:
    model, memory = flat()
    torch.manual_seed(1)
    first = SampleDecoding(seed=7, max_length=8).decode(model, memory)
    torch.manual_seed(2)
    torch.rand(5)
    second = SampleDecoding(seed=7, max_length=8).decode(model, memory)
    assert first.tokens == second.tokens
    state = torch.get_rng_state()
    SampleDecoding(seed=7, max_length=8).decode(model, memory)
    assert torch.equal(torch.get_rng_state(), state)  # a seeded sampler leaves the global generator alone


def test_different_seeds_give_different_outputs() -> None:
    model, memory = flat()
    outputs = {tuple(map(tuple, SampleDecoding(seed=s, max_length=8).decode(model, memory).tokens)) for s in range(4)}
    assert len(outputs) == 4


def test_without_a_seed_torch_manual_seed_reproduces_it() -> None:
    model, memory = flat()
    torch.manual_seed(5)
    first = SampleDecoding(max_length=8).decode(model, memory).tokens
    torch.manual_seed(5)
    assert SampleDecoding(max_length=8).decode(model, memory).tokens == first


@pytest.mark.parametrize("seed", [0, 3])
def test_top_k_of_one_is_greedy(seed: int) -> None:
    model = sharpen(build(seed))
    memory = encode(model, LENGTHS)
    greedy = GreedyDecoding(max_length=8).decode(model, memory)
    sampled = SampleDecoding(top_k=1, temperature=2.5, seed=seed, max_length=8).decode(model, memory)
    assert sampled.tokens == greedy.tokens
    assert sampled.scores == pytest.approx(greedy.scores, abs=1e-5)


def test_a_low_temperature_approaches_greedy_and_a_high_one_varies() -> None:
    model = sharpen(build(3))
    memory = encode(model, LENGTHS)
    greedy = GreedyDecoding(max_length=8).decode(model, memory).tokens
    assert SampleDecoding(temperature=1e-3, seed=1, max_length=8).decode(model, memory).tokens == greedy
    hot = [SampleDecoding(temperature=5.0, seed=s, max_length=8).decode(model, memory).tokens for s in range(3)]
    assert any(tokens != greedy for tokens in hot)


def test_top_k_draws_only_among_the_k_most_probable_tokens(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(search, "COMPACT_SHARE", None)  # keep every row, so steps index rows as given
    model, memory = flat(2)
    fed = []
    step = model.step

    def recording(tokens, state, memory):  # type: ignore[no-untyped-def]
        logits, state, weights = step(tokens, state, memory)
        fed.append(logits.topk(2, dim=-1).indices)
        return logits, state, weights

    model.step = recording  # type: ignore[method-assign]
    out = SampleDecoding(top_k=2, temperature=3.0, seed=4, max_length=6).decode(model, memory)
    for row, tokens in enumerate(out.tokens):
        for position, token in enumerate(tokens):
            assert token in fed[position][row].tolist()


def test_samples_are_batched_correctly_and_scored_by_the_model() -> None:
    model, memory = flat(1)
    sampler = SampleDecoding(seed=3, max_length=7)
    batched = sampler.decode(model, memory)
    generator = torch.Generator().manual_seed(3)
    sources = [torch.randint(4, 10, (n,), generator=generator).tolist() for n in LENGTHS]
    for row in range(len(LENGTHS)):
        assert sampler.decode(model, memory.select(torch.tensor([row]))).tokens[0] == batched.tokens[row]
        tokens, attention = batched.tokens[row], batched.attention[row]
        ended = attention.size(0) == len(tokens) + 1
        expected = teacher_forced_score(model, sources[row], tokens, ended)
        assert batched.scores[row] == pytest.approx(expected, abs=1e-4)


def test_temperature_and_top_k_errors_are_clear() -> None:
    with pytest.raises(ValueError, match=r"temperature must be > 0 .*got 0"):
        SampleDecoding(temperature=0.0)
    with pytest.raises(ValueError, match="top_k must be >= 0"):
        SampleDecoding(top_k=-1)
    recipe = {"search": {"name": "sample", "temperature": -0.5}}
    with pytest.raises(RecipeError, match="temperature must be > 0") as caught:
        pipeline.search(discover(), recipe)
    assert "search" in str(caught.value)


@pytest.mark.parametrize(
    "strategy",
    [
        GreedyDecoding(max_length=7, max_ratio=1.5, max_offset=1),
        BeamSearch(size=3, max_length=7, max_ratio=1.5, max_offset=1),
        SampleDecoding(seed=1, max_length=7, max_ratio=1.5, max_offset=1),
    ],
    ids=["greedy", "beam", "sample"],
)
def test_every_strategy_stops_at_the_relative_and_absolute_limits(strategy) -> None:  # type: ignore[no-untyped-def]
    model = build()
    favour(model, OTHER)  # never predicts '</s>'
    calls = []
    step = model.step
    model.step = lambda *args: calls.append(1) or step(*args)  # type: ignore[method-assign]
    out = strategy.decode(model, encode(model, LENGTHS))
    # min(7, ceil(1.5 * source length) + 1)
    assert [len(tokens) for tokens in out.tokens] == [7, 3, 7, 4, 6]
    assert [a.size(0) for a in out.attention] == [7, 3, 7, 4, 6]
    assert len(calls) == 8  # the longest limit and the step at it


def test_null_max_ratio_leaves_max_length_alone() -> None:
    model = build()
    favour(model, OTHER)
    out = GreedyDecoding(max_length=30, max_ratio=None).decode(model, encode(model, [1, 2]))
    assert [len(t) for t in out.tokens] == [30, 30]
    default = GreedyDecoding(max_length=30).decode(model, encode(model, [1, 2]))
    assert [len(t) for t in default.tokens] == [22, 24]  # 2 * source length + 20


def test_huge_relative_limits_fall_back_to_max_length() -> None:
    model = build()
    favour(model, OTHER)
    out = GreedyDecoding(max_length=5, max_ratio=1e300, max_offset=10**30).decode(model, encode(model, [1, 3]))
    assert [len(t) for t in out.tokens] == [5, 5]


@pytest.mark.parametrize("share", [0.25, 0.0])
@pytest.mark.parametrize(("seed", "top_k"), [(2, 0), (6, 3)])
def test_samples_are_the_same_when_finished_rows_are_dropped(seed: int, top_k: int, share: float, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model, memory = mixed(seed)
    sampler = SampleDecoding(seed=5, top_k=top_k, **MIXED_LIMITS)
    sizes = same_with_and_without_compaction(sampler, model, memory, monkeypatch, share)
    assert sizes[0] == len(MIXED_LENGTHS) and min(sizes) < sizes[0]  # rows really were dropped
