"""`source.reverse`: the encoder reads every source back to front, in training and in decoding alike, while
translations, heat maps and reports show the source in reading order."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from recipe_helpers import parse, parse_error
from test_learning import REVERSE_TASK

from transduce._cli import main as cli
from transduce._data.batching import source_tensors
from transduce._data.vocab import Vocabulary
from transduce._decoding.translator import Translator
from transduce._model import assembly as pipeline
from transduce._plugins.registry import Registry, discover
from transduce._recipe.recipe import load_recipe
from transduce._reports.heatmap import Heatmap
from transduce._runs.rundir import RunDir

TEXTS = ["sept 6 63", "THURSDAY, MARCH 4, 1971", "1/2/03"]
REVERSED = {"source": {"reverse": True}}


# --- the recipe key ------------------------------------------------------------------------------


def test_source_reverse_defaults_to_false_and_reads_a_boolean(registry: Registry) -> None:
    assert parse("data: dates\n", registry)["source"]["reverse"] is False
    assert parse("data: dates\nsource: {reverse: true}\n", registry)["source"]["reverse"] is True
    error = parse_error("data: dates\nsource:\n  reverse: yes please\n", registry)
    assert (error.key, error.line) == ("source.reverse", 3)
    assert "expected boolean" in str(error)


def test_target_reverse_is_refused_at_its_key_naming_source_reverse(registry: Registry) -> None:
    error = parse_error("data: dates\ntarget:\n  reverse: true\n", registry)
    assert (error.key, error.line) == ("target.reverse", 3)
    assert "only the source side" in str(error) and "source.reverse" in str(error)


# --- the one place where sources turn around ------------------------------------------------------


def test_source_tensors_reverse_each_source_and_keep_padding_on_the_right() -> None:
    source, lengths = source_tensors([[4, 5, 6], [7, 8]], pad_index=0, reverse=True)
    assert source.tolist() == [[6, 5, 4], [8, 7, 0]]
    assert lengths.tolist() == [3, 2]
    assert source_tensors([[4, 5, 6], [7, 8]], pad_index=0)[0].tolist() == [[4, 5, 6], [7, 8, 0]]


# --- at the model boundary -------------------------------------------------------------------------


@pytest.fixture
def fed_sources(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The source rows (padding removed) every model that `pipeline.model` builds embeds, as the encoder's
    input: what training, validation and the final report fed to it."""
    fed: list[tuple[int, ...]] = []
    build = pipeline.model

    def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        for row in inputs[0].tolist():
            fed.append(tuple(index for index in row if index != module.padding_idx))

    def model(*args: Any, **kwargs: Any) -> torch.nn.Module:
        built = build(*args, **kwargs)
        built.source_embedding.register_forward_pre_hook(record)
        return built

    monkeypatch.setattr(pipeline, "model", model)
    return fed


def encoded_sources(run: Path, registry: Registry, split: str) -> list[tuple[int, ...]]:
    """The split's sources as the run's tokenizer and vocabulary encode them, in reading order."""
    recipe = load_recipe(RunDir(run).recipe, registry)
    tokenizer = pipeline.tokenizer(registry, recipe, "source")
    vocab = Vocabulary.load(RunDir(run).source_vocab)
    examples = pipeline.data_source(registry, recipe).split(split)
    return [tuple(vocab.encode(tokenizer.tokenize(e.source))) for e in examples]


@pytest.mark.parametrize("reverse", [True, False])
def test_training_validation_and_report_feed_the_encoder_sources_in_the_recipes_order(
    reverse: bool,
    fed_sources: list[tuple[int, ...]],
    make_recipe: Callable[..., Path],
    train_run: Callable[..., Path],
    tmp_path: Path,
    registry: Registry,
) -> None:
    run = train_run(make_recipe(source={"reverse": reverse}), tmp_path / "run")
    fed = set(fed_sources)
    for split in ("train", "valid", "test"):
        sources = [s for s in encoded_sources(run, registry, split) if s != s[::-1]]  # palindromes prove nothing
        expected = {s[::-1] if reverse else s for s in sources}
        unexpected = {s if reverse else s[::-1] for s in sources}
        assert sources and expected <= fed, split
        assert not unexpected & fed, split


def test_a_resumed_run_keeps_reading_its_sources_reversed(
    fed_sources: list[tuple[int, ...]],
    make_recipe: Callable[..., Path],
    train_run: Callable[..., Path],
    tmp_path: Path,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = train_run(make_recipe(**REVERSED), tmp_path / "run")
    fed_sources.clear()
    assert cli.main(["train", "--resume", str(run), "--set", "train.epochs=2"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    train = [s for s in encoded_sources(run, registry, "train") if s != s[::-1]]
    assert {s[::-1] for s in train} <= set(fed_sources)
    assert not {*train} & set(fed_sources)
    # Turning it off on resume would change what the weights mean: refused, naming the key.
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--set", "train.epochs=3", "--set", "source.reverse=false"]) != 0
    assert "source.reverse: True -> False" in capsys.readouterr().err


# --- decoding and heat maps -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def translators(trained_run: Path) -> Iterator[tuple[Translator, Translator]]:
    """The shared trained run's translator, and the same model reading its sources reversed."""
    plain = Translator.from_run(RunDir.open(trained_run), discover(), device="cpu")
    yield plain, dataclasses.replace(plain, reverse_source=True)


def test_a_reversed_translator_translates_as_the_model_does_the_reversed_text(
    translators: tuple[Translator, Translator],
) -> None:
    plain, reversed_ = translators
    # Character tokens: reversing the text reverses its tokens.
    assert reversed_.translate(TEXTS) == plain.translate([t[::-1] for t in TEXTS])


def test_heat_map_columns_follow_the_source_in_reading_order(translators: tuple[Translator, Translator]) -> None:
    plain, reversed_ = translators
    mine = reversed_.translate_detailed(TEXTS)
    theirs = plain.translate_detailed([t[::-1] for t in TEXTS])
    for text, translation, backwards in zip(TEXTS, mine, theirs, strict=True):
        assert translation.source_tokens == list(text)
        assert translation.tokens == backwards.tokens
        # Column j is the weight of the text's j-th character, which the encoder read j-th from the end.
        assert torch.equal(translation.attention, backwards.attention.flip(-1))
        heatmap = Heatmap.from_translation(translation)
        assert heatmap.source == list(text)
        assert heatmap.weights == backwards.attention.flip(-1).tolist()


def test_a_run_trained_reversed_decodes_reversed_and_reports_heat_maps_in_reading_order(
    make_recipe: Callable[..., Path], train_run: Callable[..., Path], tmp_path: Path, registry: Registry
) -> None:
    run = RunDir.open(train_run(make_recipe(**REVERSED), tmp_path / "run"))
    translator = Translator.from_run(run, registry, device="cpu")
    assert translator.reverse_source is True
    forwards = dataclasses.replace(translator, reverse_source=False)
    assert translator.translate(TEXTS) == forwards.translate([t[::-1] for t in TEXTS])
    # The report's heat maps (JSON, and the HTML page drawn from them) show each source in reading order.
    heatmaps = json.loads(run.report("report", "json").read_text(encoding="utf-8"))["heatmaps"]
    assert heatmaps
    for heatmap in heatmaps:
        text = heatmap["source_text"]
        backwards = forwards.translate_detailed([text[::-1]])[0]
        assert heatmap["source"] == list(text)
        expected = backwards.attention.flip(-1).tolist()
        assert heatmap["weights"] == [[round(w, 3) for w in row] for row in expected]


# --- it still learns ------------------------------------------------------------------------------


def test_reversing_strings_with_a_reversed_source_is_learned_and_attends_to_the_mirrored_character(
    reverse_plugin: str,
    tmp_path: Path,
    make_recipe: Callable[..., Path],
    train_run: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The `reverse` task with a reversed source: the encoder reads exactly the characters to write, in order.
    recipe = make_recipe("reverse", **REVERSE_TASK, source={"reverse": True})
    run = train_run(recipe, tmp_path / "run")
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert report["metrics"]["exact_match"] >= 90.0, report["metrics"]
    capsys.readouterr()
    assert cli.main(["attention", str(run), "abcde", "--output", str(tmp_path / "a.png")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "abcde  →  edcba"
    assert "a b c d e" in out.splitlines()[1]  # columns in reading order
    # In reading order, the i-th character written looks at the i-th from the end: the anti-diagonal.
    translator = Translator.from_run(RunDir.open(run), discover(), device="cpu")
    for text in ("abcde", "bbaec", "cad"):
        translation = translator.translate_detailed([text])[0]
        assert translation.text == text[::-1]
        looked_at = translation.attention[: len(text)].argmax(-1).tolist()
        assert looked_at == list(range(len(text) - 1, -1, -1)), translation.attention
