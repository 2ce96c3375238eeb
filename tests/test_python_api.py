"""The Python API (`transduce.load` -> Model): translate, score, reply, info and heat maps, on trained tiny runs."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
import torch
from conftest import train, write_recipe

import transduce
from transduce import api
from transduce._decoding.chat import Chat
from transduce._decoding.translator import Translator
from transduce._plugins.registry import discover
from transduce._reports.heatmap import Heatmap
from transduce._reports.html_report import heatmap_svg
from transduce._runs.rundir import RunDir
from transduce._use.model import Model, Result, Scored
from transduce.errors import DataError, RecipeError, RunError

SOURCES = ["April 5, 2001", "september 27, 1994", "27/9/94", "TUESDAY, MARCH 3, 1970", "1 jan 2000", "june 3, 1980"]


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dates run trained enough (3 epochs on 1,000 pairs, a few seconds) that its outputs end with `</s>`."""
    root = tmp_path_factory.mktemp("learned")
    recipe = write_recipe(
        root, data={"train_size": 1000, "valid_size": 20, "test_size": 20}, train={"epochs": 3, "lr": 0.01}
    )
    return train(recipe, root / "run")


@pytest.fixture(scope="module")
def model(learned_run: Path) -> Model:
    return transduce.load(learned_run, device="cpu")


def ended(result: Result) -> bool:
    """Whether the hypothesis ended with `</s>` (its attention has the extra `</s>` row)."""
    return result.attention is not None and len(result.attention) == len(result.tokens) + 1


def test_load_is_exported_from_the_package_and_the_plugin_api() -> None:
    assert transduce.load is api.load
    assert (api.Model, api.Result, api.Scored) == (Model, Result, Scored)


def test_translate_gives_what_the_translator_gives_in_input_order(model: Model, learned_run: Path) -> None:
    translator = Translator.from_run(RunDir.open(learned_run), discover(), device="cpu")
    expected = translator.translate_detailed(SOURCES)
    results = model.translate(SOURCES, batch_size=2)
    assert [r.text for r in results] == [t.text for t in expected]
    assert [r.source for r in results] == SOURCES
    first = results[0]
    assert first.tokens == expected[0].tokens and first.source_tokens == expected[0].source_tokens
    assert first.score == pytest.approx(expected[0].score)
    assert torch.allclose(torch.tensor(first.attention), expected[0].attention, atol=1e-5)  # other batches
    assert first.alternatives == [first] and first.alternatives[0] is first


def test_one_string_gives_one_result(model: Model) -> None:
    single = model.translate(SOURCES[1])
    assert isinstance(single, Result) and single.text == model.translate([SOURCES[1]])[0].text


def test_an_empty_input_gives_an_empty_result(model: Model) -> None:
    (empty,) = model.translate([""])
    assert (empty.text, empty.tokens, empty.score, empty.attention) == ("", [], None, None)


def test_beam_options_give_an_n_best_list_best_first(model: Model) -> None:
    results = model.translate(SOURCES, "beam", size=4, n_best=3)
    for result in results:
        assert len(result.alternatives) == 3 and result.alternatives[0] is result
        scores = [a.score for a in result.alternatives]
        assert scores == sorted(scores, reverse=True)
        assert all(a.alternatives == [a] for a in result.alternatives[1:])


def test_score_agrees_with_the_beam_search_scores_of_its_own_hypotheses(model: Model) -> None:
    results = model.translate(SOURCES, "beam", size=4, n_best=3)
    pairs = [(r.source, a) for r in results for a in r.alternatives if ended(a)]
    assert len(pairs) >= 10  # the model has learned to stop
    scored = model.score([source for source, _ in pairs], [a.text for _, a in pairs], batch_size=4)
    for (_, hypothesis), score in zip(pairs, scored, strict=True):
        assert score.log_prob == pytest.approx(hypothesis.score, abs=1e-4)
        assert score.tokens == len(hypothesis.tokens) + 1
        assert score.per_token == pytest.approx(score.log_prob / score.tokens)


def test_score_comes_back_in_input_order_whatever_the_batching(model: Model) -> None:
    targets = ["2001-04-05", "1994-09-27", "1994", "", "2000-01-01-2000-01-01", "1980-06-03"]
    together = model.score(SOURCES, targets, batch_size=64)
    alone = [model.score(s, t) for s, t in zip(SOURCES, targets, strict=True)]
    assert [s.log_prob for s in together] == pytest.approx([s.log_prob for s in alone], abs=1e-5)
    assert [s.tokens for s in together] == [11, 11, 5, 1, 22, 11]


def test_a_better_target_scores_higher(model: Model) -> None:
    good, bad = model.score(["april 5, 2001"] * 2, ["2001-04-05", "9999-99-99"])
    assert good.log_prob > bad.log_prob


def test_an_empty_source_has_no_score(model: Model) -> None:
    assert model.score("", "2001-04-05") == Scored(None, 11)
    assert Scored(None, 11).per_token is None


def test_score_refuses_unequal_lists_and_non_strings(model: Model) -> None:
    with pytest.raises(DataError, match="2 sources but 1 targets"):
        model.score(["a", "b"], ["c"])
    with pytest.raises(DataError, match=r"targets\[1\]: expected a string, got int"):
        model.score(["a", "b"], ["c", 3])  # type: ignore[list-item]


def test_search_options_are_validated_as_set_validates_them(model: Model) -> None:
    with pytest.raises(RecipeError, match="search.sise: unknown key for search 'beam'. Did you mean 'size'") as info:
        model.translate("x", "beam", sise=3)
    assert info.value.key == "search.sise"
    with pytest.raises(RecipeError, match="unknown search 'bean'. Did you mean 'beam'"):
        model.translate("x", "bean")
    with pytest.raises(RecipeError, match=r"search.size: expected integer >= 1 and <= 256, got 1000000 \(too large\)"):
        model.translate("x", "beam", size=10**6)
    with pytest.raises(RecipeError, match="n_best must be between 1 and size"):
        model.translate("x", "beam", size=2, n_best=3)
    with pytest.raises(RecipeError, match="batch_size: expected a whole number >= 1, got 0"):
        model.translate("x", batch_size=0)


def test_the_runs_search_settings_carry_over_to_another_strategy(model: Model) -> None:
    (result,) = model.translate(["april 5, 2001"], "beam", size=2, max_length=3)
    assert len(result.tokens) <= 3
    assert model.info.search["name"] == "greedy"  # the run's own is untouched


def test_load_validates_its_arguments(learned_run: Path, tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"load\(\): precision: expected one of 'fp32', 'bf16', 'int8', got 'fp16'"):
        transduce.load(learned_run, precision="fp16")
    with pytest.raises(RecipeError, match=r"load\(\): device: .*got 'gpu'. Did you mean 'cpu'"):
        transduce.load(learned_run, device="gpu")
    with pytest.raises(RecipeError, match=r"--set search.sise=3: search.sise: unknown key"):
        transduce.load(learned_run, device="cpu", overrides=["search.sise=3"])
    with pytest.raises(RecipeError, match="expected 'KEY=VALUE' strings"):
        transduce.load(learned_run, device="cpu", overrides=[3])  # type: ignore[list-item]
    with pytest.raises(RunError, match="no such run directory"):
        transduce.load(tmp_path / "nothing")
    with pytest.raises(RunError, match="checkpoint not found"):
        transduce.load(learned_run, checkpoint=tmp_path / "missing.pt", device="cpu")


def test_overrides_checkpoints_and_precision_are_applied(learned_run: Path, tmp_path: Path) -> None:
    beam = transduce.load(learned_run, device="cpu", overrides=["search.name=beam", "search.n_best=2"])
    assert beam.info.search["name"] == "beam" and len(beam.translate(SOURCES[0]).alternatives) == 2
    last = transduce.load(learned_run, checkpoint="last", device="cpu", precision="bf16")
    assert last.info.checkpoint == learned_run / "checkpoints" / "last.pt" and last.info.precision == "bf16"
    copy = tmp_path / "copy.pt"
    shutil.copyfile(learned_run / "checkpoints" / "best.pt", copy)
    assert transduce.load(learned_run, checkpoint=str(copy), device="cpu").info.checkpoint == copy


def test_info_describes_the_run(model: Model, learned_run: Path) -> None:
    info = model.info
    assert info.run == learned_run.resolve() and info.name == "run"
    assert info.checkpoint == learned_run / "checkpoints" / "best.pt"
    assert (info.device, info.precision, info.metrics_split) == ("cpu", "fp32", "test")
    assert set(info.metrics) == {"exact_match", "bleu", "chrf"}
    assert info.recipe["model"]["encoder"]["hidden_size"] == 32
    assert info.as_dict()["run"] == str(learned_run.resolve())


def test_reply_answers_as_the_chat_command_does(model: Model, learned_run: Path) -> None:
    chat = Chat.open(learned_run, discover())
    assert [model.reply(text) for text in SOURCES] == [chat.reply(text) for text in SOURCES]


def test_heatmap_svg_is_the_html_reports_picture(model: Model) -> None:
    result = model.translate(SOURCES[0])
    expected = heatmap_svg(Heatmap.from_translation(result, source_text=SOURCES[0]))
    assert model.heatmap_svg(result) == expected and expected.startswith("<svg")
    assert model.heatmap_svg(model.translate("")) is None


def test_calls_from_several_threads_give_the_serial_results(model: Model) -> None:
    serial = [[r.text for r in model.translate(SOURCES, "beam", size=2)], model.score(SOURCES, SOURCES)]
    found: list[list[object]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                found.append(
                    [[r.text for r in model.translate(SOURCES, "beam", size=2)], model.score(SOURCES, SOURCES)]
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(found) == 12
    assert all(item == serial for item in found)


def test_long_inputs_are_cut_and_counted(model: Model) -> None:
    before = model.inputs_cut
    model.translate("1" * 5000)
    model.score("1" * 5000, "1994-09-27")
    assert model.inputs_cut == before + 2
