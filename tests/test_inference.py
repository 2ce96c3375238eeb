"""Tests of the detailed translation API: Translation fields, scores, attention, n-best, strategy swaps."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
from transduce_builtins.search import GreedyDecoding

from transduce._decoding.translator import Translation, Translator
from transduce._model.model import Memory, Seq2Seq
from transduce._plugins.contracts import Hypotheses, SearchStrategy
from transduce._plugins.registry import discover
from transduce._runs.rundir import RunDir

SOURCES = ["27 sep 1994", "", "monday, march 3, 2001", "1/2/03", "   ", "june 30, 1970"]


def teacher_forced_score(model: Seq2Seq, source: list[int], output: list[int], ended: bool = True) -> float:
    """Log-probability of `output` (+ '</s>' when `ended`) given `source`, from the training-time forward pass."""
    target = [*output, model.eos_index] if ended else output
    with torch.no_grad():
        logits = model(
            torch.tensor([source]), torch.tensor([len(source)]), torch.tensor([[model.bos_index, *target[:-1]]])
        )
        if not target:
            return 0.0
        logp = torch.log_softmax(logits[0].double(), dim=-1)
        return float(logp.gather(1, torch.tensor(target).unsqueeze(1)).sum())


@pytest.fixture(scope="module")
def translator(trained_run: Path) -> Translator:
    return Translator.from_run(RunDir.open(trained_run), discover(), device="cpu")


def test_detailed_translations_agree_with_translate_in_input_order(translator: Translator) -> None:
    detailed = translator.translate_detailed(SOURCES, batch_size=2)
    assert all(isinstance(t, Translation) for t in detailed)
    assert [t.text for t in detailed] == translator.translate(SOURCES, batch_size=3)
    assert [t.tokens for t in detailed] == translator.translate_tokens(SOURCES)
    assert [t.source_tokens for t in detailed] == [translator.source_tokenizer.tokenize(s) for s in SOURCES]
    assert any(t.tokens for t in detailed)


def test_an_empty_input_gives_an_empty_translation(translator: Translator) -> None:
    (empty,) = translator.translate_detailed([""])
    assert (empty.source_tokens, empty.tokens, empty.text) == ([], [], "")
    assert (empty.score, empty.attention, empty.alternatives) == (None, None, [])
    assert translator.translate_detailed([]) == []


def ending_sooner(translator: Translator, bias: float) -> Translator:
    """The translator with a copy of its model whose '</s>' is `bias` more likely (the tiny model rarely ends)."""
    model = copy.deepcopy(translator.model)
    with torch.no_grad():
        model.decoder.output.bias[model.eos_index] += bias
    return dataclasses.replace(translator, model=model)


def test_attention_rows_and_score_match_the_output_and_eos(translator: Translator) -> None:
    seen = set()
    for bias in (0.0, 0.7, 0.75, 0.8, 100.0):
        variant = ending_sooner(translator, bias)
        for item in variant.translate_detailed(SOURCES):
            if not item.source_tokens:
                continue
            rows, columns = item.attention.shape
            assert item.attention.device.type == "cpu" and item.attention.dtype == torch.float32
            assert not item.attention.is_inference()  # callers may change it in place
            assert columns == len(item.source_tokens)
            assert rows in (len(item.tokens), len(item.tokens) + 1)
            torch.testing.assert_close(item.attention.sum(-1), torch.ones(rows))
            ended = rows == len(item.tokens) + 1  # the last row is the one of '</s>'
            source = variant.source_vocab.encode(item.source_tokens)
            output = variant.target_vocab.encode(item.tokens)
            expected = teacher_forced_score(variant.model, source, output, ended)
            assert item.score == pytest.approx(expected, abs=1e-4)
            assert item.alternatives == []  # greedy gives no n-best list
            seen.add((ended, bool(item.tokens)))
    assert {(True, True), (True, False), (False, True)} <= seen  # ended with tokens, at once, and cut


def test_a_cut_output_has_no_eos_row_and_no_eos_in_its_score(translator: Translator) -> None:
    short = translator.with_decoding(GreedyDecoding(max_length=2))
    (full,) = translator.translate_detailed(["27 sep 1994"])
    (cut,) = short.translate_detailed(["27 sep 1994"])
    assert len(full.tokens) > 2
    assert cut.tokens == full.tokens[:2]
    assert cut.attention.shape == (2, len(cut.source_tokens))
    torch.testing.assert_close(cut.attention, full.attention[:2])
    source = translator.source_vocab.encode(cut.source_tokens)
    output = translator.target_vocab.encode(cut.tokens)
    expected = teacher_forced_score(translator.model, source, output, ended=False)
    assert cut.score == pytest.approx(expected, abs=1e-4)


def test_with_decoding_swaps_only_the_strategy(translator: Translator) -> None:
    strategy = GreedyDecoding(max_length=3)
    other = translator.with_decoding(strategy)
    assert other.decoding is strategy and translator.decoding is not strategy
    assert other.model is translator.model and other.target_vocab is translator.target_vocab
    assert other.source_tokenizer is translator.source_tokenizer
    assert all(len(t) <= 3 for t in other.translate_tokens(SOURCES))
    assert any(len(t) > 3 for t in translator.translate_tokens(SOURCES))


class TokensOnly(SearchStrategy):
    """A third-party strategy that returns tokens alone: always the token of index 4, twice."""

    name = "tokens-only"

    def decode(self, model: Seq2Seq, memory: Memory) -> Hypotheses:
        return Hypotheses(tokens=[[4, 4] for _ in range(memory.batch_size)])


def test_a_strategy_returning_only_tokens_still_works(translator: Translator) -> None:
    plain = translator.with_decoding(TokensOnly())
    token = translator.target_vocab.tokens[4]
    detailed = plain.translate_detailed(SOURCES[:2])
    assert detailed[0].tokens == [token, token]
    assert (detailed[0].score, detailed[0].attention, detailed[0].alternatives) == (None, None, [])
    assert plain.translate(SOURCES[:1]) == [detailed[0].text]


class Specials(SearchStrategy):
    """Emits '<pad>', a real token, '<s>' and ends: what an untrained model may do."""

    name = "specials"

    def decode(self, model: Seq2Seq, memory: Memory) -> Hypotheses:
        source_length = memory.mask.size(1)
        attention = torch.eye(4, source_length)
        attention[:, 0] = 1.0 - attention[:, 1:].sum(-1)
        return Hypotheses(
            tokens=[[0, 5, 2] for _ in range(memory.batch_size)],
            attention=[attention for _ in range(memory.batch_size)],
            scores=[-1.5] * memory.batch_size,
        )


def test_special_tokens_are_dropped_with_their_attention_rows(translator: Translator) -> None:
    (item,) = translator.with_decoding(Specials()).translate_detailed(["27 sep 1994"])
    assert item.tokens == [translator.target_vocab.tokens[5]]
    assert item.text == translator.with_decoding(Specials()).translate(["27 sep 1994"])[0]
    assert item.attention.shape == (2, len(item.source_tokens))  # the token's row and the '</s>' row
    assert item.attention[0, 1] == 1.0 and item.attention[1, 3] == 1.0
    assert item.score == -1.5


# --- precision ------------------------------------------------------------------------------------


class _RecordingProducts(SearchStrategy):
    """Decodes with `inner`, noting the dtype the model multiplies in at every batch."""

    name = "recording"

    def __init__(self, inner: SearchStrategy) -> None:
        self.inner = inner
        self.seen: list[torch.dtype] = []

    def decode(self, model: Seq2Seq, memory: Memory) -> Hypotheses:
        self.seen.append(model.product_dtype)
        return self.inner.decode(model, memory)


def _recording_product_dtypes(translator: Translator) -> tuple[Translator, list[torch.dtype]]:
    recording = _RecordingProducts(translator.decoding)
    return translator.with_decoding(recording), recording.seen


def test_bf16_precision_decodes_with_bfloat16_products_and_scores_its_outputs(
    trained_run: Path, translator: Translator
) -> None:
    # The run trained in float32; `--set train.precision=bf16` decodes it with bfloat16 products.
    fast = Translator.from_run(RunDir.open(trained_run), discover(), device="cpu", overrides=["train.precision=bf16"])
    assert fast.precision == "bf16" and translator.precision == "fp32"
    assert {p.dtype for p in fast.model.parameters()} == {torch.float32}  # the weights stay as trained
    fast, seen = _recording_product_dtypes(fast)
    texts = [s for s in SOURCES if s.strip()]
    for result in fast.translate_detailed(texts):
        assert result.attention is not None and result.attention.dtype == torch.float32
        assert torch.allclose(result.attention.sum(1), torch.ones(result.attention.size(0)), atol=1e-2)
        # The bfloat16 score is the float32 model's score of the same output, to bfloat16's precision.
        source = translator.source_vocab.encode(result.source_tokens)
        output = translator.target_vocab.encode(result.tokens)
        ended = result.attention.size(0) > len(result.tokens)
        exact = teacher_forced_score(translator.model, source, output, ended)
        assert result.score == pytest.approx(exact, abs=0.05 * (len(output) + 1))
    assert seen and set(seen) == {torch.bfloat16}
    assert fast.model.product_dtype == torch.float32  # only while decoding
    plain, seen_plain = _recording_product_dtypes(translator)
    plain.translate(texts)
    assert set(seen_plain) == {torch.float32}


def test_bf16_decoding_leaves_a_float32_model_as_it_was(translator: Translator) -> None:
    # The trainer's translator in bf16 training: its model keeps training in float32 while validation decodes.
    model = copy.deepcopy(translator.model)
    bf16 = dataclasses.replace(translator, model=model, precision="bf16")
    before = {name: value.clone() for name, value in model.state_dict().items()}
    outputs = bf16.translate([s for s in SOURCES if s.strip()])
    assert len(outputs) == 4
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.product_dtype == torch.float32
