"""Every kind of decoder network trains, stops, resumes, decodes in bf16 and reports like the default one:
a run interrupted mid-epoch and resumed ends bitwise where the uninterrupted run ends; evaluation, translation
and heat maps work with any decoder, and a model without attention says it has none."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_resume import TWO_EPOCHS, assert_same_training, signal_at_step, train

from transduce._cli import main as cli

RecipeWriter = Callable[..., Path]

#: Combinations of the `lstm` decoder network's options, and a GRU encoder and one without a final state.
COMBINATIONS = [
    pytest.param({"decoder": {"attention": "none", "peeky": True, "cell": "gru"}}, id="plain-peeky-gru"),
    pytest.param({"decoder": {"input_feeding": True, "layers": 2, "attention": "additive"}}, id="feeding-2"),
    pytest.param(
        {"decoder": {"init": "bridge", "hidden_size": 16, "tie_embeddings": True}, "encoder": {"cell": "gru"}},
        id="bridge-tied-gru-encoder",
    ),
]


@pytest.mark.parametrize("changes", COMBINATIONS)
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any]
) -> None:
    recipe = make_recipe(model=changes, train=TWO_EPOCHS)
    reference = tmp_path / "reference"
    assert train(recipe, reference) == 0
    run = tmp_path / "run"
    signal_at_step(monkeypatch, 8)  # epoch 2, its second batch
    assert train(recipe, run) == 143
    monkeypatch.undo()
    assert train(recipe, run) == 0
    assert_same_training(run, reference)


@pytest.mark.parametrize("changes", COMBINATIONS)
def test_bf16_training_and_decoding_work_and_learn(
    tmp_path: Path, make_recipe: RecipeWriter, changes: dict[str, Any]
) -> None:
    run = tmp_path / "bf16"
    assert train(make_recipe(model=changes, train={"epochs": 2, "precision": "bf16"}), run) == 0
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert losses[1] < losses[0]
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert set(report["metrics"]) == {"exact_match", "bleu", "chrf"}


def test_a_model_without_attention_evaluates_translates_and_says_it_has_no_heat_map(
    tmp_path: Path, make_recipe: RecipeWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "plain"
    assert train(make_recipe(model={"decoder": {"attention": "none"}}), run) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--split", "valid", "--compare", "beam:size=2"]) == 0
    report = json.loads((run / "report.valid.json").read_text(encoding="utf-8"))
    assert report["heatmaps"] == [] and len(report["comparison"]) == 2
    assert "<html" in (run / "report.valid.html").read_text(encoding="utf-8")
    assert cli.main(["translate", str(run), "27 sep 1994"]) == 0
    assert capsys.readouterr().out.strip()
    assert cli.main(["attention", str(run), "27 sep 1994"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "this model has no attention (model.decoder.attention: none)" in err and "Traceback" not in err


def test_an_encoder_without_a_final_state_trains_through_a_plugin(
    tmp_path: Path, make_recipe: RecipeWriter, expose_distribution: Callable[..., str]
) -> None:
    support = Path(__file__).parent / "support"
    expose_distribution("stateless-support", "0.1", {"stateless": "stateless_encoder"}, support)
    for name, decoder in (("final", {}), ("peeky", {"attention": "none", "peeky": True})):
        run = tmp_path / name
        recipe = make_recipe(name, model={"encoder": {"name": "mean", "size": 32}, "decoder": decoder})
        assert train(recipe, run) == 0
        assert json.loads((run / "components.json").read_text(encoding="utf-8"))["encoder/mean"].startswith(
            "stateless-support"
        )
        assert cli.main(["translate", str(run), "27 sep 1994"]) == 0
