"""Tests of greedy decoding: stopping at `</s>` and at max_length, batching, finished sentences."""

from __future__ import annotations

import pytest
import torch
from model_helpers import seq2seq
from transduce_builtins import search
from transduce_builtins.encoders import LSTMEncoder
from transduce_builtins.search import GreedyDecoding

from transduce._model.model import Memory, Seq2Seq

VOCAB, EMB, HIDDEN = 10, 4, 6
PAD, BOS, EOS, OTHER = 0, 2, 3, 7


def build(seed: int = 0, **options) -> Seq2Seq:  # type: ignore[no-untyped-def]
    """A small random model; `options`: the lstm decoder network's parameters (attention by `scorer`)."""
    torch.manual_seed(seed)
    encoder = LSTMEncoder(input_size=EMB, hidden_size=HIDDEN, bidirectional=True)
    return seq2seq(
        encoder, source_vocab_size=VOCAB, target_vocab_size=VOCAB, embedding_dim=EMB, hidden_size=HIDDEN, **options
    ).eval()


def favour(model: Seq2Seq, token: int) -> None:
    """Make `token` win every step, whatever the input."""
    output = model.decoder.output
    with torch.no_grad():
        output.weight.zero_()
        output.bias.zero_()
        output.bias[token] = 5.0


def encode(model: Seq2Seq, lengths: list[int]) -> Memory:
    generator = torch.Generator().manual_seed(3)
    source = torch.full((len(lengths), max(lengths)), PAD)
    for row, length in enumerate(lengths):
        source[row, :length] = torch.randint(4, VOCAB, (length,), generator=generator)
    with torch.no_grad():
        return model.encode(source, torch.tensor(lengths))


class StepRecorder:
    """Wraps `model.step`: counts calls, records the fed tokens, optionally rewrites the logits."""

    def __init__(self, model: Seq2Seq, rewrite=None) -> None:  # type: ignore[no-untyped-def]
        self.step = model.step
        self.rewrite = rewrite
        self.fed: list[list[int]] = []
        model.step = self  # type: ignore[method-assign]

    def __call__(self, tokens, state, memory):  # type: ignore[no-untyped-def]
        self.fed.append(tokens.tolist())
        logits, state, weights = self.step(tokens, state, memory)
        if self.rewrite is not None:
            logits = self.rewrite(len(self.fed) - 1, logits.clone())
        return logits, state, weights

    @property
    def calls(self) -> int:
        return len(self.fed)


def test_greedy_stops_at_once_when_eos_wins_the_first_step() -> None:
    model = build()
    favour(model, EOS)
    recorder = StepRecorder(model)
    out = GreedyDecoding(max_length=20).decode(model, encode(model, [3, 5]))
    assert out.tokens == [[], []]
    assert recorder.calls == 1
    assert recorder.fed == [[BOS, BOS]]
    assert [a.shape for a in out.attention] == [(1, 5), (1, 5)]


@pytest.mark.parametrize("max_length", [1, 4])
def test_greedy_stops_at_exactly_max_length_tokens_without_eos(max_length: int) -> None:
    model = build()
    favour(model, OTHER)
    recorder = StepRecorder(model)
    out = GreedyDecoding(max_length=max_length).decode(model, encode(model, [3, 5, 1]))
    assert out.tokens == [[OTHER] * max_length] * 3
    assert recorder.calls <= max_length + 1
    # Cut at max_length without '</s>': one attention row per emitted token, no more.
    assert [a.shape[0] for a in out.attention] == [max_length] * 3


def test_greedy_returns_one_hypothesis_per_input_sentence() -> None:
    model = build()
    lengths = [4, 1, 6, 2, 3]
    out = GreedyDecoding(max_length=7).decode(model, encode(model, lengths))
    assert len(out.tokens) == len(lengths)
    assert len(out.attention) == len(lengths)
    for tokens, attention in zip(out.tokens, out.attention, strict=True):
        assert len(tokens) <= 7
        assert EOS not in tokens
        assert attention.shape[1] == 6


def sharpen(model: Seq2Seq) -> Seq2Seq:
    """Scale every weight so an untrained model's outputs depend on the source (and sometimes end)."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model


@pytest.mark.parametrize("seed", [1, 3])
def test_greedy_batched_gives_the_same_outputs_as_one_sentence_at_a_time(seed: int) -> None:
    model = sharpen(build(seed))
    memory = encode(model, [4, 1, 6, 2])
    decoder = GreedyDecoding(max_length=8)
    batched = decoder.decode(model, memory)
    assert len({tuple(t) for t in batched.tokens}) > 1  # the sentences really are decoded differently
    for row in range(4):
        alone = decoder.decode(model, memory.select(torch.tensor([row])))
        assert alone.tokens[0] == batched.tokens[row]


def test_greedy_feeds_each_prediction_back_as_the_next_input() -> None:
    model = build(1)
    recorder = StepRecorder(model)
    out = GreedyDecoding(max_length=5).decode(model, encode(model, [3, 2]))
    assert recorder.fed[0] == [BOS, BOS]
    for row, tokens in enumerate(out.tokens):
        assert [fed[row] for fed in recorder.fed[1 : len(tokens) + 1]] == tokens


def test_greedy_does_not_extend_sentences_that_finished_while_others_continue(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(search, "COMPACT_SHARE", None)  # keep every row, to see what finished ones are fed
    model = build()
    finish_at = {0: 2, 1: 4, 2: 0}  # row -> step at which '</s>' wins

    def rewrite(step: int, logits: torch.Tensor) -> torch.Tensor:
        logits[:] = 0.0
        logits[:, OTHER] = 1.0  # after finishing, the model would go on with OTHER
        for row, at in finish_at.items():
            if step == at:
                logits[row, EOS] = 10.0
        return logits

    recorder = StepRecorder(model, rewrite)
    out = GreedyDecoding(max_length=10).decode(model, encode(model, [3, 2, 4]))
    assert out.tokens == [[OTHER] * 2, [OTHER] * 4, []]
    # It stops as soon as every sentence has finished, well before max_length.
    assert recorder.calls == 5
    # Finished sentences are fed '</s>' from then on, not their own continuation.
    assert [fed[0] for fed in recorder.fed] == [BOS, OTHER, OTHER, EOS, EOS]
    assert [fed[2] for fed in recorder.fed] == [BOS, EOS, EOS, EOS, EOS]
    # One attention row per emitted token plus the one for '</s>'.
    assert [a.shape[0] for a in out.attention] == [3, 5, 1]


def test_greedy_attention_rows_are_distributions_over_the_real_source() -> None:
    model = build(2)
    out = GreedyDecoding(max_length=4).decode(model, encode(model, [2, 5]))
    short = out.attention[0]
    torch.testing.assert_close(short.sum(-1), torch.ones(short.size(0)))
    assert torch.all(short[:, 2:] == 0.0)


def test_greedy_default_max_length_is_100_and_is_kept() -> None:
    assert GreedyDecoding().max_length == 100
    assert GreedyDecoding(max_length=3).max_length == 3


MIXED_LENGTHS = [4, 1, 6, 2, 5, 3, 7, 2, 1, 4, 6, 3]
#: Relative limits end the rows at different steps even when '</s>' never wins.
MIXED_LIMITS = {"max_length": 12, "max_ratio": 1.5, "max_offset": 1}


#: Decoder networks whose states differ in layout (h and c, h alone, with input feeding's vector, no attention):
#: search strategies reorder them only through model.reorder_state.
DECODERS = [
    pytest.param({}, id="lstm-attention"),
    pytest.param({"scorer": None}, id="no-attention"),
    pytest.param({"input_feeding": True, "cell": "gru", "layers": 2}, id="feeding-gru-2"),
    pytest.param({"peeky": True, "scorer": None}, id="peeky"),
]


def mixed(seed: int, **options) -> tuple[Seq2Seq, Memory]:  # type: ignore[no-untyped-def]
    """A random model whose outputs end at many different lengths, and a batch of varied sources."""
    model = sharpen(build(seed, **options))
    with torch.no_grad():
        model.decoder.output.bias[EOS] += 1.0
    return model, encode(model, MIXED_LENGTHS)


def same_with_and_without_compaction(strategy, model: Seq2Seq, memory: Memory, monkeypatch, share: float) -> list[int]:  # type: ignore[no-untyped-def]
    """Decode keeping every row and dropping finished ones (at `share`); assert the same outputs, return the
    batch sizes fed to the model when dropping."""
    sizes: list[int] = []
    step = model.step

    def recording(tokens, state, memory):  # type: ignore[no-untyped-def]
        sizes.append(tokens.size(0))
        return step(tokens, state, memory)

    model.step = recording  # type: ignore[method-assign]
    monkeypatch.setattr(search, "COMPACT_SHARE", None)
    full = strategy.decode(model, memory)
    steps, sizes[:] = len(sizes), []
    monkeypatch.setattr(search, "COMPACT_SHARE", share)
    compact = strategy.decode(model, memory)
    assert len(sizes) == steps  # dropping rows changes no sentence's number of steps
    assert compact.tokens == full.tokens
    assert compact.scores == pytest.approx(full.scores, abs=1e-5)
    assert (compact.attention is None) == (full.attention is None)
    for a, b in zip(compact.attention or [], full.attention or [], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert (compact.nbest is None) == (full.nbest is None)
    for a, b in zip(compact.nbest or [], full.nbest or [], strict=True):
        assert a.tokens == b.tokens
        assert a.scores == pytest.approx(b.scores, abs=1e-5)
        for x, y in zip(a.attention or [], b.attention or [], strict=True):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    return sizes


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("share", [0.25, 0.0])
@pytest.mark.parametrize("seed", [2, 6])
def test_greedy_gives_the_same_outputs_when_finished_rows_are_dropped(
    seed: int, share: float, decoder, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    model, memory = mixed(seed, **decoder)
    sizes = same_with_and_without_compaction(GreedyDecoding(**MIXED_LIMITS), model, memory, monkeypatch, share)
    assert sizes[0] == len(MIXED_LENGTHS) and min(sizes) < sizes[0]  # rows really were dropped


@pytest.mark.parametrize("vocab", [8000, 8001, 4 * search.MAX_BLOCK, 100, 3])
def test_most_probable_is_max_with_indices_ties_and_infinities_included(vocab: int) -> None:
    # The two-stage search (block maxima, then the best block) must give torch's max exactly: the value, and the
    # first column of equal ones, also across blocks, in a padded last block, and in rows of -inf.
    generator = torch.Generator().manual_seed(vocab)
    logp = torch.randn(7, vocab, generator=generator).log_softmax(-1)
    logp[1, :] = -0.5  # all equal: column 0
    logp[2, vocab - 1] = 1.0  # in the last (padded) block
    logp[3, vocab // 2] = logp[3, vocab - 1] = 2.0  # equal maxima in different blocks: the first
    logp[4, :] = float("-inf")
    logp[5, vocab // 3] = float("inf")
    values, tokens = search.most_probable(logp)
    expected = logp.max(dim=-1)
    assert torch.equal(values, expected.values) and torch.equal(tokens, expected.indices)
    assert tokens[3] == vocab // 2 and tokens[2] == vocab - 1
