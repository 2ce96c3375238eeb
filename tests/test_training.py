"""Training: reproducible, resumable, logged, checkpointed, stopped early, and loud about a diverging loss."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console

from transduce._cli import main as cli
from transduce._plugins.registry import discover
from transduce._recipe.recipe import load_recipe
from transduce._runs import checkpoint
from transduce._runs.rundir import RunDir
from transduce._training import trainer as training
from transduce.errors import TransduceError

METRICS = {"exact_match", "bleu", "chrf"}
RecipeWriter = Callable[..., Path]
Trainer = Callable[..., Path]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["model"]


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"tensors differ: {different}"


def log(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def without_timings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_second")} for r in records]


# --- reproducibility and resuming ---------------------------------------------------


def test_same_recipe_and_seed_train_bitwise_identical_weights_and_another_seed_does_not(
    tmp_path: Path, make_recipe: RecipeWriter, train_run: Trainer
) -> None:
    recipe = make_recipe(train={"epochs": 2})
    train_run(recipe, tmp_path / "first")
    train_run(recipe, tmp_path / "second")
    train_run(make_recipe("reseeded", seed=2, train={"epochs": 2}), tmp_path / "third")

    for name in ("checkpoints/last.pt", "checkpoints/best.pt"):
        assert_identical(weights(tmp_path / "first" / name), weights(tmp_path / "second" / name))
    assert without_timings(log(tmp_path / "first")) == without_timings(log(tmp_path / "second"))
    first, third = weights(tmp_path / "first/checkpoints/last.pt"), weights(tmp_path / "third/checkpoints/last.pt")
    assert not all(torch.equal(first[name], third[name]) for name in first)


def test_resuming_after_one_epoch_gives_the_same_run_as_two_epochs_in_one_go(
    tmp_path: Path, make_recipe: RecipeWriter, train_run: Trainer, capsys: pytest.CaptureFixture[str]
) -> None:
    train_run(make_recipe("two", train={"epochs": 2}), tmp_path / "whole")
    train_run(make_recipe("one", train={"epochs": 1}), tmp_path / "split")
    assert len(log(tmp_path / "split")) == 1
    capsys.readouterr()

    assert cli.main(["train", "--resume", str(tmp_path / "split"), "--set", "train.epochs=2"]) == 0
    assert "resuming after epoch 1" in capsys.readouterr().out

    whole = checkpoint.load(tmp_path / "whole/checkpoints/last.pt")
    split = checkpoint.load(tmp_path / "split/checkpoints/last.pt")
    assert_identical(whole["model"], split["model"])
    for a, b in zip(whole["optimizer"]["state"].values(), split["optimizer"]["state"].values(), strict=True):
        assert_identical(a, b)
    assert torch.equal(whole["rng"]["torch"], split["rng"]["torch"])
    assert whole["progress"]["step"] == split["progress"]["step"] > 0
    assert without_timings(log(tmp_path / "whole")) == without_timings(log(tmp_path / "split"))
    assert (
        json.loads((tmp_path / "whole/report.json").read_text())["metrics"]
        == json.loads((tmp_path / "split/report.json").read_text())["metrics"]
    )
    assert "epochs: 2" in (tmp_path / "split/recipe.yaml").read_text(encoding="utf-8")


def test_resuming_rewrites_the_metrics_log_from_the_checkpoint(
    tmp_path: Path, make_recipe: RecipeWriter, train_run: Trainer
) -> None:
    run = tmp_path / "run"
    train_run(make_recipe(train={"epochs": 1}), run)
    # An epoch logged after the last checkpoint was written (a crash between the two).
    with (run / "metrics.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"epoch": 2, "loss": 9.9}) + "\n")
    assert cli.main(["train", "--resume", str(run), "--set", "train.epochs=2"]) == 0
    assert [record["epoch"] for record in log(run)] == [1, 2]
    assert log(run)[1]["loss"] != 9.9


def test_an_interrupted_run_exits_130_and_resumes_to_the_weights_of_an_uninterrupted_one(
    tmp_path: Path,
    make_recipe: RecipeWriter,
    trained_run: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # trained_run is the tiny recipe trained for 2 epochs (5 steps each) without interruption.
    real_loss = training.sequence_loss
    calls = 0

    def loss_interrupted_in_epoch_2(*args: Any, **kwargs: Any) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 8:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(training, "sequence_loss", loss_interrupted_in_epoch_2)
    run = tmp_path / "run"
    capsys.readouterr()
    assert cli.main(["train", str(make_recipe(train={"epochs": 2})), "--run-dir", str(run)]) == 130
    err = capsys.readouterr().err
    assert "interrupted: stopped at once" in err and f"Continue with `transduce train --resume {run}`" in err
    assert [r["epoch"] for r in log(run)] == [1]
    assert checkpoint.load(run / "checkpoints/last.pt")["progress"]["epoch"] == 1

    monkeypatch.setattr(training, "sequence_loss", real_loss)
    assert cli.main(["train", "--resume", str(run)]) == 0
    assert_identical(weights(run / "checkpoints/last.pt"), weights(trained_run / "checkpoints/last.pt"))
    assert without_timings(log(run)) == without_timings(log(trained_run))


def test_resuming_with_a_change_that_is_not_safe_fails_listing_it_and_leaves_the_run_alone(
    tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    recipe_before = (run / "recipe.yaml").read_bytes()
    last_before = (run / "checkpoints/last.pt").read_bytes()
    capsys.readouterr()

    status = cli.main(
        [
            "train",
            "--resume",
            str(run),
            "--set",
            "model.decoder.hidden_size=64",
            "--set",
            "train.lr=0.5",
            "--set",
            "seed=9",
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "the recipe differs from the one this run was started with" in err
    assert "model.decoder.hidden_size: 32 -> 64" in err
    assert "train.lr: 0.01 -> 0.5" in err
    assert "seed: 1 -> 9" in err
    assert "Traceback" not in err
    assert (run / "recipe.yaml").read_bytes() == recipe_before
    assert (run / "checkpoints/last.pt").read_bytes() == last_before


def test_resuming_a_finished_run_with_a_safe_change_trains_no_more_epochs(
    tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    status = cli.main(["train", "--resume", str(run), "--set", "evaluate.examples=1", "--set", "search.max_length=2"])
    assert status == 0, capsys.readouterr().err
    assert len(log(run)) == 2
    assert_identical(weights(run / "checkpoints/last.pt"), weights(trained_run / "checkpoints/last.pt"))
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert len(report["examples"]) == 1
    assert all(len(e["hypothesis"]) <= 2 for e in report["examples"])


# --- what a run writes ----------------------------------------------------------------


def test_metrics_log_has_one_json_line_per_epoch_with_loss_and_valid_metrics(trained_run: Path) -> None:
    records = log(trained_run)
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0]["step"] < records[1]["step"]
    for record in records:
        assert record["loss"] > 0 and record["tokens_per_second"] > 0
        assert set(record["valid"]) == METRICS
        assert all(0.0 <= value <= 100.0 for value in record["valid"].values())
    assert records[0]["best"] is True
    assert records[1]["loss"] < records[0]["loss"]


def test_best_checkpoint_holds_the_best_validated_epoch(trained_run: Path) -> None:
    records = log(trained_run)
    best = [r for r in records if r.get("best")][-1]
    saved = checkpoint.load(trained_run / "checkpoints/best.pt")
    assert saved["epoch"] == best["epoch"]
    assert saved["score"] == pytest.approx(best["valid"]["exact_match"], abs=1e-4)
    progress = checkpoint.load(trained_run / "checkpoints/last.pt")["progress"]
    assert progress["epoch"] == 2 and progress["best_epoch"] == best["epoch"]


def test_final_report_scores_the_test_split_as_json_and_markdown(trained_run: Path) -> None:
    report = json.loads((trained_run / "report.json").read_text(encoding="utf-8"))
    assert report["split"] == "test" and report["size"] == 50
    assert set(report["metrics"]) == METRICS
    assert set(report["signatures"]) == {"bleu", "chrf"}
    assert len(report["examples"]) == 3
    assert all(e["correct"] == (e["hypothesis"] == e["reference"]) for e in report["examples"])
    markdown = (trained_run / "report.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Evaluation on test (50 examples)")
    for name in METRICS:
        assert f"| {name} | {report['metrics'][name]:.2f} |" in markdown


def test_the_resolved_recipe_and_vocabularies_are_saved_in_the_run(trained_run: Path) -> None:
    recipe = load_recipe(trained_run / "recipe.yaml", discover())
    assert recipe["train"]["epochs"] == 2 and recipe["train"]["best_metric"] == "exact_match"
    source = json.loads((trained_run / "vocab.source.json").read_text(encoding="utf-8"))["tokens"]
    target = json.loads((trained_run / "vocab.target.json").read_text(encoding="utf-8"))["tokens"]
    assert source[:4] == target[:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert sorted(target[4:]) == sorted("0123456789-")


def test_validation_runs_every_valid_every_epochs_and_after_the_last(
    tmp_path: Path, make_recipe: RecipeWriter, train_run: Trainer
) -> None:
    train_run(make_recipe(train={"epochs": 3, "valid_every": 2}), tmp_path / "run")
    assert [("valid" in r) for r in log(tmp_path / "run")] == [False, True, True]


# --- early stopping and divergence -------------------------------------------------------


@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_ends_training_after_patience_validations_without_improvement(
    tmp_path: Path, make_recipe: RecipeWriter, train_run: Trainer, capsys: pytest.CaptureFixture[str], patience: int
) -> None:
    # With a learning rate of 0 the weights never change, so no validation improves on the first.
    train_run(make_recipe(train={"epochs": 6, "lr": 0.0, "patience": patience}), tmp_path / "run")
    records = log(tmp_path / "run")
    assert [r["epoch"] for r in records] == list(range(1, patience + 2))
    assert [r.get("best", False) for r in records] == [True] + [False] * patience
    assert f"early stopping: no improvement in {patience} validations" in capsys.readouterr().out
    assert (tmp_path / "run/report.json").exists()


def test_without_patience_training_runs_every_epoch_even_without_improvement(
    tmp_path: Path, make_recipe: RecipeWriter, train_run: Trainer
) -> None:
    train_run(make_recipe(train={"epochs": 3, "lr": 0.0}), tmp_path / "run")
    assert len(log(tmp_path / "run")) == 3


def test_a_nan_loss_is_a_transduce_error_naming_the_step_and_epoch(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_loss = training.sequence_loss
    calls = 0

    def loss_going_nan_at_step_3(*args: Any, **kwargs: Any) -> torch.Tensor:
        nonlocal calls
        calls += 1
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls >= 3 else loss

    monkeypatch.setattr(training, "sequence_loss", loss_going_nan_at_step_3)
    # The loss is read back after step 5 (the epoch's last), yet the message names step 3, where it went nan.
    registry = discover()
    recipe = load_recipe(make_recipe(), registry)
    run = RunDir.create(tmp_path / "run")
    training.start_run(recipe, run)
    trainer = training.Trainer(recipe, registry, run, Console(quiet=True))
    with pytest.raises(
        TransduceError,
        match=r"the loss became nan at step 3 \(epoch 1\); no checkpoint was written yet\. Lower train\.lr",
    ):
        trainer.train()
    assert not run.metrics_log.exists()


def test_an_absurd_learning_rate_is_refused_before_training_with_status_2(
    tmp_path: Path, make_recipe: RecipeWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    # lr 1e37 once overflowed inside Adam with a raw RuntimeError; validation now stops it first.
    recipe = make_recipe(train={"lr": 1.0e37, "clip_grad_norm": None})
    status = cli.main(["train", str(recipe), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2
    assert "train.lr" in err and "too large" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_lr_decay_halves_the_rate_after_each_validation_without_improvement_and_resume_keeps_it(
    make_recipe: Callable[..., Path], train_run: Callable[..., Path], tmp_path: Path
) -> None:
    # A rate this small changes no prediction, so only the first validation improves.
    recipe = make_recipe(train={"epochs": 3, "lr": 1e-9, "lr_decay": 0.5, "min_lr": 3e-10})
    run = train_run(recipe, tmp_path / "run")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("best", False) for r in records] == [True, False, False]
    assert [r["lr"] for r in records] == pytest.approx([1e-9, 1e-9, 5e-10])
    assert cli.main(["train", "--resume", str(run), "--set", "train.epochs=4"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["lr"] == pytest.approx(3e-10)  # 2.5e-10 would be below min_lr


def test_lr_decay_never_raises_a_rate_already_below_min_lr(
    make_recipe: Callable[..., Path], train_run: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = make_recipe(train={"epochs": 3, "lr": 1e-9, "lr_decay": 0.5, "min_lr": 1e-5})
    run = train_run(recipe, tmp_path / "run")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records] == pytest.approx([1e-9, 1e-9, 1e-9])
