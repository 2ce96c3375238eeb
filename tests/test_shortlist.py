"""Vocabulary shortlists (evaluate.shortlist): the lexicon learned from training pairs, each batch's candidates,
decoding over them (exactly the whole vocabulary's result when they cover it; only listed tokens otherwise),
lexicon.pt kept in the run, and the accuracy on a learned task."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_helpers import seq2seq
from transduce_builtins.decoder_networks import LSTMDecoder
from transduce_builtins.encoders import LSTMEncoder
from transduce_builtins.search import BeamSearch, GreedyDecoding, SampleDecoding

from transduce._cli import main as cli
from transduce._decoding import shortlist
from transduce._decoding.shortlist import Lexicon, Shortlist, Shortlisted
from transduce._decoding.translator import Translator
from transduce._model import assembly as pipeline
from transduce._model.model import Seq2Seq
from transduce._plugins.contracts import DecoderNetwork, Hypotheses, SearchStrategy
from transduce._plugins.registry import discover
from transduce._recipe.recipe import load_recipe
from transduce._runs.rundir import RunDir
from transduce.errors import DataError, RecipeError, RunError

FINGERPRINTS = {"vocab.source.json": "a", "vocab.target.json": "b"}
#: (source, target) index pairs over 4 specials + 4 source and 6 target tokens.
PAIRS = [([4, 5], [4, 6]), ([4, 6], [4, 7]), ([4, 4, 5], [6, 4]), ([7], [9]), ([5, 7], [6, 9, 9, 8])]


def rows(lexicon: Lexicon) -> list[list[int]]:
    return [lexicon.targets[a:b].tolist() for a, b in zip(lexicon.offsets[:-1], lexicon.offsets[1:], strict=True)]


# --- the lexicon ----------------------------------------------------------------------------------


def test_the_lexicon_ranks_targets_by_the_training_pairs_they_share_with_each_source_token() -> None:
    lexicon = Lexicon.learn(PAIRS, source_size=8, target_size=10, fingerprints=FINGERPRINTS)
    # 4 is in pairs 0-2 (targets {4, 6}, {4, 7}, {4, 6}); 5 in 0, 2, 4; 7 in 3 and 4; 6 in 1.
    assert rows(lexicon) == [[], [], [], [], [4, 6, 7], [6, 4, 8, 9], [4, 7], [9, 6, 8]]
    assert lexicon.fingerprints == FINGERPRINTS  # ties above: the lower (more frequent) target index first


def test_learning_in_chunks_and_a_capped_row_length(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = Lexicon.learn(PAIRS, 8, 10, FINGERPRINTS)
    monkeypatch.setattr(shortlist, "CHUNK", 2)  # three chunks, counts merged
    chunked = Lexicon.learn(iter(PAIRS), 8, 10, FINGERPRINTS)
    assert torch.equal(chunked.offsets, whole.offsets) and torch.equal(chunked.targets, whole.targets)
    monkeypatch.setattr(shortlist, "STORED_PER_SOURCE", 2)
    assert rows(Lexicon.learn(PAIRS, 8, 10, FINGERPRINTS)) == [[], [], [], [], [4, 6], [6, 4], [4, 7], [9, 6]]


def test_each_batch_gets_the_specials_the_frequent_tokens_and_its_source_tokens_best_entries_beyond_them() -> None:
    lexicon = Lexicon.learn(PAIRS, 8, 10, FINGERPRINTS)
    short = Shortlist(lexicon, per_source=1, frequent=1, target_size=10)  # always 0-4
    assert short.candidates(torch.tensor([[4, 0]])).tolist() == [0, 1, 2, 3, 4, 6]  # padding adds nothing
    assert short.candidates(torch.tensor([[5, 7], [6, 0]])).tolist() == [0, 1, 2, 3, 4, 6, 7, 9]
    wider = Shortlist(lexicon, per_source=2, frequent=0, target_size=10)
    assert wider.candidates(torch.tensor([[7]])).tolist() == [0, 1, 2, 3, 6, 9]
    assert Shortlist(lexicon, 5, 100, 10).candidates(torch.tensor([[4]])).tolist() == list(range(10))


def test_lexicon_pt_is_saved_atomically_and_refused_when_damaged_or_of_other_vocabularies(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.pt"
    lexicon = Lexicon.learn(PAIRS, 8, 10, FINGERPRINTS)
    lexicon.save(path)
    loaded = Lexicon.load(path)
    assert rows(loaded) == rows(lexicon) and loaded.fingerprints == FINGERPRINTS
    assert [p.name for p in tmp_path.iterdir()] == ["lexicon.pt"]  # no temporary file left
    loaded.check(path, FINGERPRINTS, source_size=8, target_size=10)
    for fingerprints, source_size, target_size in (
        ({**FINGERPRINTS, "vocab.target.json": "c"}, 8, 10),
        (FINGERPRINTS, 9, 10),
        (FINGERPRINTS, 8, 9),
    ):
        with pytest.raises(RunError, match="was learned with other vocabularies than the run's; delete it"):
            loaded.check(path, fingerprints, source_size, target_size)
    torch.save({"format": 1, "offsets": torch.tensor([0, 5]), "targets": torch.tensor([1]), "files": {}}, path)
    with pytest.raises(RunError, match="do not form a lexicon .* delete lexicon.pt and decode again"):
        Lexicon.load(path)
    path.write_bytes(b"not a lexicon")
    with pytest.raises(RunError, match="cannot load checkpoint safely"):
        Lexicon.load(path)


# --- decoding over the candidates -----------------------------------------------------------------

VOCAB, EMB, HIDDEN = 12, 5, 8
STRATEGIES = [
    pytest.param(GreedyDecoding(max_length=6), id="greedy"),
    pytest.param(BeamSearch(size=3, n_best=2, max_length=6), id="beam"),
    pytest.param(SampleDecoding(seed=3, max_length=6), id="sample"),
]


def small_model() -> Seq2Seq:
    torch.manual_seed(0)
    encoder = LSTMEncoder(input_size=EMB, hidden_size=HIDDEN, bidirectional=True)
    model = seq2seq(encoder, source_vocab_size=VOCAB, target_vocab_size=VOCAB, embedding_dim=EMB, hidden_size=HIDDEN)
    with torch.no_grad():
        model.decoder.output.bias[model.eos_index] -= 1.0  # outputs of a few tokens
    return model.eval()


def decode(strategy: SearchStrategy, model: Seq2Seq | Shortlisted, dtype: torch.dtype = torch.float32):  # type: ignore[no-untyped-def]
    source = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0], [4, 0, 0, 0]])
    plain = model.model if isinstance(model, Shortlisted) else model
    with torch.inference_mode(), plain.reduced_products(dtype):
        memory = plain.encode(source, torch.tensor([4, 2, 1]))
        return model.decode(strategy, memory) if isinstance(model, Shortlisted) else strategy.decode(model, memory)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int8], ids=["fp32", "int8"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_shortlist_of_every_token_decodes_exactly_as_the_whole_vocabulary(
    strategy: SearchStrategy, dtype: torch.dtype
) -> None:
    model = small_model()
    full = decode(strategy, model, dtype)
    listed = decode(strategy, Shortlisted(model, torch.arange(VOCAB)), dtype)
    assert_identical(listed, full)


def assert_identical(one: Hypotheses, other: Hypotheses) -> None:
    """The same tokens, scores and attention (bit for bit), and n-best lists alike."""
    assert (one.tokens, one.scores) == (other.tokens, other.scores)
    assert one.attention is not None and other.attention is not None
    assert all(torch.equal(a, b) for a, b in zip(one.attention, other.attention, strict=True))
    assert (one.nbest is None) == (other.nbest is None)
    for mine, theirs in zip(one.nbest or (), other.nbest or (), strict=True):
        assert_identical(mine, theirs)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_outputs_stay_inside_the_shortlist_and_a_decoder_network_that_scores_everything_gets_the_same(
    strategy: SearchStrategy, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = small_model()
    candidates = torch.tensor([0, 1, 2, 3, 5, 9, 11])
    full = decode(strategy, model)
    listed = decode(strategy, Shortlisted(model, candidates))
    allowed = set(candidates.tolist())
    assert all(set(tokens) <= allowed for tokens in listed.tokens)
    assert listed.tokens != full.tokens  # the whole vocabulary's outputs use other tokens too
    for nbest in listed.nbest or ():
        assert all(set(tokens) <= allowed for tokens in nbest.tokens)
    # A decoder network without restricted_output scores all V tokens: their columns are taken instead.
    monkeypatch.setattr(LSTMDecoder, "restricted_output", DecoderNetwork.restricted_output)
    same = decode(strategy, Shortlisted(model, candidates))
    assert same.tokens == listed.tokens
    assert same.scores == pytest.approx(listed.scores) if listed.scores is not None else same.scores is None


def test_shortlisted_scores_are_log_probabilities_over_the_candidates() -> None:
    model = small_model()
    candidates = torch.tensor([0, 1, 2, 3, 5, 9, 11])
    listed = decode(GreedyDecoding(max_length=6), Shortlisted(model, candidates))
    source = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        tokens = [model.bos_index, *listed.tokens[0]]
        logits = model(source, torch.tensor([4]), torch.tensor([tokens]))[0, :, candidates]
        logp = torch.log_softmax(logits.double(), -1)
        positions = [int(torch.searchsorted(candidates, t)) for t in [*listed.tokens[0], model.eos_index]]
        expected = float(logp[torch.arange(len(positions)), torch.tensor(positions)].sum())
    ended = listed.attention is not None and listed.attention[0].size(0) > len(listed.tokens[0])
    if not ended:
        expected -= float(logp[len(positions) - 1, positions[-1]])
    assert listed.scores is not None and listed.scores[0] == pytest.approx(expected, abs=1e-4)


# --- in a run -------------------------------------------------------------------------------------


def _translator(run: Path, *overrides: str) -> Translator:
    return Translator.from_run(RunDir.open(run), discover(), device="cpu", overrides=list(overrides))


def test_the_lexicon_is_learned_at_the_first_shortlisted_decoding_and_kept_in_the_run(learned_run: Path) -> None:
    lexicon = learned_run / "lexicon.pt"
    lexicon.unlink(missing_ok=True)
    assert _translator(learned_run).shortlist is None and not lexicon.exists()  # off by default
    first = _translator(learned_run, "evaluate.shortlist=3", "evaluate.shortlist_frequent=0")
    assert first.shortlist is not None and lexicon.exists()
    before, stamp = lexicon.read_bytes(), lexicon.stat().st_mtime_ns
    again = _translator(learned_run, "evaluate.shortlist=4", "evaluate.shortlist_frequent=0")  # read, not learned
    assert lexicon.read_bytes() == before and lexicon.stat().st_mtime_ns == stamp
    assert torch.equal(again.shortlist.table[:, :3], first.shortlist.table)  # type: ignore[union-attr]


def test_outputs_of_a_learned_task_use_only_their_shortlist_and_stay_as_accurate(learned_run: Path) -> None:
    recipe = load_recipe(RunDir.open(learned_run).recipe, discover())
    examples = list(pipeline.data_source(discover(), recipe).split("test"))
    sources, references = [e.source for e in examples], [e.target for e in examples]
    full = _translator(learned_run)
    narrow = _translator(learned_run, "evaluate.shortlist=2", "evaluate.shortlist_frequent=0")
    assert narrow.shortlist is not None
    for source, tokens in zip(sources[:20], narrow.translate_tokens(sources[:20], batch_size=1), strict=True):
        listed = narrow.shortlist.candidates(torch.tensor([full.source_vocab.encode(full.source_tokens([source])[0])]))
        assert set(full.target_vocab.encode(tokens)) <= set(listed.tolist())
    exact = [sum(h == r for h, r in zip(t.translate(sources), references, strict=True)) for t in (full, narrow)]
    assert exact[0] >= 0.9 * len(references)  # the task was learned
    assert abs(exact[1] - exact[0]) <= 0.002 * len(references)  # exact match within 0.2 points


def test_a_shortlist_that_covers_the_vocabulary_gives_exactly_the_whole_vocabularys_translations(
    learned_run: Path,
) -> None:
    texts = ["27 sep 1994", "monday, march 3, 2001", "1/2/03"]
    full, covering = _translator(learned_run), _translator(learned_run, "evaluate.shortlist=1")  # 100 frequent
    for mine, theirs in zip(covering.translate_detailed(texts), full.translate_detailed(texts), strict=True):
        assert (mine.tokens, mine.score) == (theirs.tokens, theirs.score)
        assert mine.attention is not None and theirs.attention is not None
        assert torch.equal(mine.attention, theirs.attention)


def test_shortlist_settings_are_bounded_and_a_missing_training_split_is_explained(
    learned_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for value in ("0", "501"):
        with pytest.raises(RecipeError, match="evaluate.shortlist"):
            _translator(learned_run, f"evaluate.shortlist={value}")

    def unreadable(*args: object) -> object:
        raise DataError("data.path: /gone/train.txt: no such file")

    (learned_run / "lexicon.pt").unlink(missing_ok=True)
    monkeypatch.setattr(pipeline, "data_source", unreadable)
    capsys.readouterr()
    assert cli.main(["translate", str(learned_run), "1/2/03", "--set", "evaluate.shortlist=3"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "evaluate.shortlist learns its lexicon from the run's training split" in err
    assert "/gone/train.txt: no such file" in err and "or decode without a shortlist" in err
    assert "Traceback" not in err and not (learned_run / "lexicon.pt").exists()
