"""Tests of beam search: greedy at size 1, n-best order and scores, batching, length penalty, limits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_greedy import (
    DECODERS,
    EOS,
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
from transduce_builtins.search import BeamSearch, GreedyDecoding

from transduce._decoding.translator import Translator
from transduce._model.model import Memory, Seq2Seq
from transduce._plugins.params import resolve_params
from transduce._plugins.registry import discover
from transduce._runs.rundir import RunDir
from transduce.errors import RecipeError

LENGTHS = [4, 1, 6, 2, 3]
SOURCES = ["27 sep 1994", "monday, march 3, 2001", "1/2/03", "june 30, 1970", "9 may 2010"]


def sources(memory: Memory) -> list[list[int]]:
    """The source ids of each sentence, recovered from the fixed generator `encode` uses."""
    generator = torch.Generator().manual_seed(3)
    return [torch.randint(4, 10, (n,), generator=generator).tolist() for n in memory.mask.sum(1).tolist()]


@pytest.fixture(scope="module")
def translator(trained_run: Path) -> Translator:
    return Translator.from_run(RunDir.open(trained_run), discover(), device="cpu")


@pytest.mark.parametrize("seed", [0, 1, 3, 4])
def test_beam_of_size_one_is_greedy_on_random_models(seed: int) -> None:
    model = sharpen(build(seed))
    memory = encode(model, LENGTHS)
    greedy = GreedyDecoding(max_length=8).decode(model, memory)
    beam = BeamSearch(size=1, max_length=8).decode(model, memory)
    assert beam.tokens == greedy.tokens
    assert beam.scores == pytest.approx(greedy.scores, abs=1e-5)
    for ours, theirs in zip(beam.attention, greedy.attention, strict=True):
        torch.testing.assert_close(ours, theirs)


def test_beam_of_size_one_is_greedy_on_a_trained_model(translator: Translator) -> None:
    greedy = translator.translate_detailed(SOURCES)
    beam = translator.with_decoding(BeamSearch(size=1, max_length=12)).translate_detailed(SOURCES)
    assert [t.tokens for t in beam] == [t.tokens for t in greedy]
    assert [t.score for t in beam] == pytest.approx([t.score for t in greedy], abs=1e-5)


@pytest.mark.parametrize("seed", [1, 4])
def test_nbest_is_in_score_order_and_each_score_is_the_models(seed: int) -> None:
    model = sharpen(build(seed))
    memory = encode(model, LENGTHS)
    out = BeamSearch(size=4, n_best=3, max_length=6).decode(model, memory)
    assert out.nbest is not None and len(out.nbest) == len(LENGTHS)
    for row, (source, found) in enumerate(zip(sources(memory), out.nbest, strict=True)):
        assert len(found.tokens) == 3 and len({tuple(t) for t in found.tokens}) == 3
        assert found.scores == sorted(found.scores, reverse=True)
        assert (found.tokens[0], found.scores[0]) == (out.tokens[row], out.scores[row])
        for tokens, score, attention in zip(found.tokens, found.scores, found.attention, strict=True):
            assert EOS not in tokens and len(tokens) <= 6
            ended = attention.size(0) == len(tokens) + 1
            assert ended or (attention.size(0) == len(tokens) == 6)  # only a cut output lacks the '</s>' row
            assert score == pytest.approx(teacher_forced_score(model, source, tokens, ended), abs=1e-4)
            torch.testing.assert_close(attention.sum(-1), torch.ones(attention.size(0)))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_the_best_of_beam_five_scores_at_least_as_well_as_greedy(translator: Translator, alpha: float) -> None:
    beam = BeamSearch(size=5, length_penalty=alpha, max_length=12)
    greedy = translator.translate_detailed(SOURCES)
    best = translator.with_decoding(beam).translate_detailed(SOURCES)
    for ours, theirs in zip(best, greedy, strict=True):
        lengths = torch.tensor([len(ours.tokens), len(theirs.tokens)])
        penalised = torch.tensor([ours.score, theirs.score]) / beam.penalty(lengths)
        assert penalised[0] >= penalised[1] - 1e-5
    assert any(ours.tokens != theirs.tokens for ours, theirs in zip(best, greedy, strict=True))


@pytest.mark.parametrize("seed", [1, 6])
def test_beam_on_a_batch_equals_beam_on_each_sentence_alone(seed: int) -> None:
    model = sharpen(build(seed))
    memory = encode(model, LENGTHS)
    beam = BeamSearch(size=3, n_best=2, length_penalty=0.6, max_length=7)
    batched = beam.decode(model, memory)
    assert len({tuple(t) for t in batched.tokens}) > 1
    for row in range(len(LENGTHS)):
        alone = beam.decode(model, memory.select(torch.tensor([row])))
        assert alone.tokens[0] == batched.tokens[row]
        assert alone.nbest[0].tokens == batched.nbest[row].tokens
        assert alone.scores[0] == pytest.approx(batched.scores[row], abs=1e-5)
        assert alone.attention[0].shape[1] == max(LENGTHS)
        width = LENGTHS[row]  # padding gets no weight
        torch.testing.assert_close(alone.attention[0][:, :width], batched.attention[row][:, :width])


def test_length_penalty_prefers_longer_outputs(translator: Translator) -> None:
    raw = translator.with_decoding(BeamSearch(size=5, max_length=12)).translate_detailed(SOURCES)
    long = translator.with_decoding(BeamSearch(size=5, length_penalty=2.0, max_length=12)).translate_detailed(SOURCES)
    assert sum(len(t.tokens) for t in long) >= sum(len(t.tokens) for t in raw)
    assert sum(t.score for t in raw) >= sum(t.score for t in long) - 1e-5  # raw ranking: best raw score


def never_ending(seed: int = 0) -> Seq2Seq:
    model = build(seed)
    favour(model, OTHER)
    return model


def test_beam_stops_at_the_absolute_and_the_relative_limit() -> None:
    model = never_ending()
    memory = encode(model, [4, 1, 6])
    out = BeamSearch(size=3, n_best=2, max_length=9, max_ratio=1.0, max_offset=2).decode(model, memory)
    assert [len(t) for t in out.tokens] == [6, 3, 8]  # min(9, source length + 2)
    assert all(t == [OTHER] * len(t) for t in out.tokens)
    assert [a.size(0) for a in out.attention] == [6, 3, 8]  # cut: no '</s>' row
    out = BeamSearch(size=2, max_length=4).decode(model, memory)
    assert [len(t) for t in out.tokens] == [4, 4, 4]


def test_beam_gives_nbest_only_when_asked_and_rejects_more_than_its_size() -> None:
    model = sharpen(build(1))
    assert BeamSearch(size=3, max_length=5).decode(model, encode(model, [2, 3])).nbest is None
    with pytest.raises(ValueError, match="n_best must be between 1 and size"):
        BeamSearch(size=2, n_best=3)


def test_beam_params_validate_in_recipes() -> None:
    def fail(key: str, message: str) -> None:
        raise RecipeError(message, key=f"decoder.{key}")

    with pytest.raises(RecipeError, match="too small"):
        resolve_params(BeamSearch.params, {"length_penalty": -1}, owner="decoder 'beam'", fail=fail)
    resolved = resolve_params(BeamSearch.params, {}, owner="decoder 'beam'", fail=fail)
    assert resolved == {
        "size": 5,
        "length_penalty": 0.0,
        "n_best": 1,
        "max_length": 100,
        "max_ratio": 2.0,
        "max_offset": 20,
    }


def test_translate_detailed_lists_beam_alternatives(translator: Translator) -> None:
    beam = translator.with_decoding(BeamSearch(size=4, n_best=3, max_length=12))
    for item in beam.translate_detailed(SOURCES[:3]):
        assert len(item.alternatives) == 3
        first = item.alternatives[0]
        assert (first.tokens, first.text, first.score) == (item.tokens, item.text, item.score)
        assert [a.score for a in item.alternatives] == sorted((a.score for a in item.alternatives), reverse=True)
        for alternative in item.alternatives:
            assert alternative.attention.shape[1] == len(item.source_tokens)
            assert alternative.alternatives == []


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("share", [0.25, 0.0])
@pytest.mark.parametrize(("seed", "size", "n_best", "alpha"), [(2, 3, 2, 0.6), (6, 3, 1, 0.0), (2, 2, 2, 0.0)])
def test_beam_gives_the_same_outputs_when_finished_sentences_are_dropped(  # type: ignore[no-untyped-def]
    seed: int, size: int, n_best: int, alpha: float, share: float, decoder, monkeypatch
) -> None:
    model, memory = mixed(seed, **decoder)
    beam = BeamSearch(size=size, n_best=n_best, length_penalty=alpha, **MIXED_LIMITS)
    sizes = same_with_and_without_compaction(beam, model, memory, monkeypatch, share)
    assert sizes[0] == size * len(MIXED_LENGTHS) and min(sizes) < sizes[0]  # sentences really were dropped
    assert all(n % size == 0 for n in sizes)  # whole sentences, all their rows
