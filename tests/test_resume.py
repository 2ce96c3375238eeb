"""Resuming: mid-epoch checkpoints hold everything, re-running the same command continues bitwise-identically,
a changed recipe is refused unless the change is safe, and a diverging loss never overwrites the last good
checkpoint."""

from __future__ import annotations

import json
import random
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy
import pytest
import torch
import yaml

from transduce._cli import main as cli
from transduce._runs import checkpoint
from transduce._training import trainer as training

RecipeWriter = Callable[..., Path]
#: The tiny recipe as `trained_run` (conftest) trains it: 2 epochs of 6 steps. checkpoint_every does not change
#: what is trained, so a run of this recipe ends with exactly the weights of `trained_run`.
TWO_EPOCHS = {"epochs": 2, "checkpoint_every": 2}


def train(recipe: Path, run: Path, *extra: str) -> int:
    return cli.main(["train", str(recipe), "--run-dir", str(run), *extra])


def log(run: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_second")} for r in records]


def assert_same_training(run: Path, reference: Path) -> None:
    """Final weights, optimizer state, metrics log and test scores of two runs are identical."""
    a, b = checkpoint.load(run / "checkpoints/last.pt"), checkpoint.load(reference / "checkpoints/last.pt")
    assert a["model"].keys() == b["model"].keys()
    assert [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])] == []
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    for mine, theirs in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    assert a["progress"]["step"] == b["progress"]["step"]
    assert log(run) == log(reference)
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert report["metrics"] == json.loads((reference / "report.json").read_text(encoding="utf-8"))["metrics"]


def signal_at_step(monkeypatch: pytest.MonkeyPatch, step: int, signum: int = signal.SIGTERM) -> None:
    """Send this process `signum` during training step `step`, as `kill` would."""
    real_loss, calls = training.sequence_loss, 0

    def loss(*args: Any, **kwargs: Any) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == step:
            signal.raise_signal(signum)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(training, "sequence_loss", loss)


def record_saves(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, bytes]]:
    """Every checkpoint written: (file name, progress step or -1, its bytes right after writing)."""
    saves: list[tuple[str, int, bytes]] = []
    real_save = checkpoint.save_atomic

    def save(payload: dict[str, Any], path: Path) -> None:
        real_save(payload, path)
        saves.append((path.name, payload.get("progress", {}).get("step", -1), path.read_bytes()))

    monkeypatch.setattr(checkpoint, "save_atomic", save)
    return saves


# --- mid-epoch checkpoints and bitwise-identical resuming ------------------------------------------


def test_a_run_stopped_mid_epoch_resumes_by_rerunning_the_command_to_the_uninterrupted_result(
    tmp_path: Path,
    make_recipe: RecipeWriter,
    trained_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe, run = make_recipe(train=TWO_EPOCHS), tmp_path / "run"
    signal_at_step(monkeypatch, 8)  # epoch 2, its second batch
    assert train(recipe, run) == 143
    err = capsys.readouterr().err
    assert "interrupted: stopped by SIGTERM at step 8 (epoch 2, batch 2 of 6); checkpoint written to" in err
    assert f"Continue with `transduce train --resume {run}`" in err

    saved = checkpoint.load(run / "checkpoints/last.pt")
    progress = saved["progress"]
    assert (progress["epoch"], progress["step"], progress["batch"]) == (1, 8, 2)
    assert progress["epoch_tokens"] > 0 and progress["epoch_loss"] > 0 and progress["epoch_seconds"] > 0
    assert progress["best_score"] == progress["history"][0]["valid"]["exact_match"]
    assert set(saved["rng"]) >= {"python", "numpy", "torch"}
    assert ("cuda" in saved["rng"]) == torch.cuda.is_available()
    assert saved["optimizer"]["state"] and saved["components"]
    assert [r["epoch"] for r in log(run)] == [1]

    monkeypatch.undo()
    assert train(recipe, run) == 0
    assert "resuming epoch 2 after batch 2 (step 8)" in capsys.readouterr().out
    assert_same_training(run, trained_run)


def test_checkpoint_every_writes_last_pt_within_the_epoch_with_its_position(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    saves = record_saves(monkeypatch)
    assert train(make_recipe(train={"epochs": 1, "checkpoint_every": 2}), tmp_path / "run") == 0
    assert [(name, step) for name, step, _ in saves] == [
        ("last.pt", 2),
        ("last.pt", 4),
        ("best.pt", -1),
        ("last.pt", 6),
    ]


def test_checkpoint_minutes_writes_by_time_and_the_default_writes_only_at_epoch_ends(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    saves = record_saves(monkeypatch)
    assert train(make_recipe(train={"checkpoint_minutes": 0}), tmp_path / "every-step") == 0
    assert [step for name, step, _ in saves if name == "last.pt"] == [1, 2, 3, 4, 5, 6]
    saves.clear()
    assert train(make_recipe("default"), tmp_path / "default") == 0  # 10 minutes: never within this tiny run
    assert [step for name, step, _ in saves if name == "last.pt"] == [6]


def test_rng_states_round_trip_python_numpy_and_torch_through_a_checkpoint(tmp_path: Path) -> None:
    training.seed_everything(3)
    checkpoint.save_atomic({"rng": checkpoint.rng_states()}, tmp_path / "rng.pt")
    drawn = (random.random(), numpy.random.rand(), torch.rand(3))
    training.seed_everything(9)
    checkpoint.restore_rng_states(checkpoint.load(tmp_path / "rng.pt")["rng"])
    again = (random.random(), numpy.random.rand(), torch.rand(3))
    assert drawn[:2] == again[:2] and torch.equal(drawn[2], again[2])


# --- re-running the command: finished runs, changed recipes ----------------------------------------


def test_rerunning_a_finished_run_says_so_and_raising_epochs_trains_the_extra_ones(
    tmp_path: Path, make_recipe: RecipeWriter, trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    recipe = make_recipe(train={"epochs": 2})
    capsys.readouterr()
    assert train(recipe, run) == 0
    assert "this run is finished (2 of 2 epochs trained; raise train.epochs to train more)" in capsys.readouterr().out
    assert [r["epoch"] for r in log(run)] == [1, 2]

    assert train(recipe, run, "--set", "train.epochs=3") == 0
    assert "resuming after epoch 2" in capsys.readouterr().out
    assert [r["epoch"] for r in log(run)] == [1, 2, 3]


def test_rerunning_with_a_changed_recipe_lists_what_changed_and_the_safe_keys_and_touches_nothing(
    tmp_path: Path, make_recipe: RecipeWriter, trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    capsys.readouterr()
    changed = make_recipe("changed", train={"epochs": 2, "lr": 0.02}, model={"dropout": 0.2})
    assert train(changed, run) == 2
    err = capsys.readouterr().err
    assert "the recipe differs from the one this run was started with" in err
    assert "model.dropout: 0.1 -> 0.2" in err and "train.lr: 0.01 -> 0.02" in err
    assert "Only these may change on resume: train.epochs, train.patience" in err
    assert "train.checkpoint_every" in err and "start a new run (another --run-dir)" in err
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before


def test_a_safe_change_is_accepted_on_resume(
    tmp_path: Path, make_recipe: RecipeWriter, trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    safe = make_recipe(train={"epochs": 2, "checkpoint_every": 3, "checkpoint_minutes": 5, "patience": 4})
    assert train(safe, run, "--set", "evaluate.examples=1") == 0, capsys.readouterr().err
    assert len(json.loads((run / "report.json").read_text(encoding="utf-8"))["examples"]) == 1


# --- a diverging loss -----------------------------------------------------------------------------


def test_a_loss_going_nan_stops_naming_its_step_and_the_last_good_checkpoint_stays_byte_identical(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_loss, calls = training.sequence_loss, 0

    def loss_going_nan_at_step_5(*args: Any, **kwargs: Any) -> torch.Tensor:
        nonlocal calls
        calls += 1
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls >= 5 else loss

    monkeypatch.setattr(training, "sequence_loss", loss_going_nan_at_step_5)
    saves = record_saves(monkeypatch)
    run = tmp_path / "run"
    assert train(make_recipe(train=TWO_EPOCHS), run) == 2
    err = capsys.readouterr().err
    assert (
        f"the loss became nan at step 5 (epoch 1); the last good checkpoint, {run}/checkpoints/last.pt, is kept" in err
    )
    assert [(name, step) for name, step, _ in saves] == [("last.pt", 2), ("last.pt", 4)]
    assert (run / "checkpoints/last.pt").read_bytes() == saves[-1][2]
    assert checkpoint.load(run / "checkpoints/last.pt")["progress"]["step"] == 4


def test_non_finite_weights_are_never_checkpointed_even_when_the_loss_was_finite(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_step = training.Trainer._step

    def step_poisoning_a_weight_at_step_4(self: training.Trainer, batch: Any, *rest: Any) -> torch.Tensor:
        loss = real_step(self, batch, *rest)
        if self.state.step == 4:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("inf"))
        return loss

    monkeypatch.setattr(training.Trainer, "_step", step_poisoning_a_weight_at_step_4)
    saves = record_saves(monkeypatch)
    run = tmp_path / "run"
    assert train(make_recipe(train=TWO_EPOCHS), run) == 2
    assert "a weight became infinite or nan at step 4 (epoch 1); the last good checkpoint" in capsys.readouterr().err
    assert [step for _, step, _ in saves] == [2]
    assert (run / "checkpoints/last.pt").read_bytes() == saves[0][2]


def test_a_recipe_yaml_naming_other_tokenizers_than_last_pt_is_refused_and_nothing_changes(
    tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An edited (or damaged) recipe.yaml is both the saved and the new recipe, so the recipe comparison finds
    # nothing: the components last.pt records are what tell.
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    recipe = (run / "recipe.yaml").read_text(encoding="utf-8")
    (run / "recipe.yaml").write_text(recipe.replace("name: char", "name: word", 1), encoding="utf-8")
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    assert cli.main(["train", "--resume", str(run), "--set", "train.epochs=3"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "last.pt does not fit the recipe: the recipe names tokenizer/word, which it was not trained with." in err
    assert "Put back the run's recipe.yaml as it was" in err
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before


# --- the optimizer and the schedule ---------------------------------------------------------------


@pytest.mark.parametrize(
    "optimization",
    [
        {"schedule": {"name": "warmup", "warmup_steps": 5}},
        {"schedule": {"name": "cosine", "min_lr": 0.001}, "optimizer": {"name": "sgd", "momentum": 0.9}},
    ],
    ids=["adam-warmup", "sgd-cosine"],
)
def test_a_run_with_a_step_schedule_resumes_mid_epoch_bit_for_bit(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch, optimization: dict[str, Any]
) -> None:
    recipe = make_recipe(train={**TWO_EPOCHS, **optimization})
    reference, run = tmp_path / "reference", tmp_path / "run"
    assert train(recipe, reference) == 0
    signal_at_step(monkeypatch, 8)
    assert train(recipe, run) == 143
    stopped = checkpoint.load(run / "checkpoints/last.pt")
    assert stopped["progress"]["step"] == 8 and isinstance(stopped["schedule"], dict)
    monkeypatch.undo()
    assert train(recipe, run) == 0
    assert_same_training(run, reference)
    saved, expected = (checkpoint.load(r / "checkpoints/last.pt") for r in (run, reference))
    assert saved["schedule"] == expected["schedule"]
    assert len({r["lr"] for r in log(run)}) == 2  # the rate moved between the epochs


def as_before_schedules(run: Path) -> None:
    """Rewrite `run` as a run of the version before optimizers and schedules were components: recipe.yaml with
    train.lr_decay and train.min_lr and no train.optimizer or train.schedule; no 'schedule' in last.pt; neither
    family in its components record."""
    recipe = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8"))
    del recipe["train"]["optimizer"]
    schedule = recipe["train"].pop("schedule")
    recipe["train"].update(lr_decay=schedule["decay"], min_lr=schedule["min_lr"])
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    saved = checkpoint.load(run / "checkpoints/last.pt")
    del saved["schedule"]
    saved["components"] = {
        k: v for k, v in saved["components"].items() if not k.startswith(("optimizer/", "schedule/"))
    }
    checkpoint.save_atomic(saved, run / "checkpoints/last.pt")
    (run / "components.json").write_text(json.dumps(saved["components"]), encoding="utf-8")


def test_a_run_from_before_schedules_resumes_with_the_plateau_schedule_to_the_uninterrupted_result(
    tmp_path: Path, make_recipe: RecipeWriter, trained_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe, run = make_recipe(train=TWO_EPOCHS), tmp_path / "run"
    signal_at_step(monkeypatch, 8)
    assert train(recipe, run) == 143
    monkeypatch.undo()
    as_before_schedules(run)
    assert cli.main(["train", "--resume", str(run)]) == 0
    assert_same_training(run, trained_run)
    assert checkpoint.load(run / "checkpoints/last.pt")["schedule"] == {}  # written as every checkpoint now is


def without_schedule_state(saved: dict[str, Any]) -> None:
    """last.pt as a version before schedules wrote it: no 'schedule', none in its components record."""
    del saved["schedule"]
    saved["components"] = {k: v for k, v in saved["components"].items() if not k.startswith("schedule/")}


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (
            without_schedule_state,
            "last.pt: the checkpoint has no 'schedule' (the learning-rate schedule's state), which schedule 'cosine' "
            "needs; it was written before schedules were components",
        ),
        (
            lambda saved: saved.update(schedule={"total": "many"}),
            "last.pt: 'schedule' (the learning-rate schedule's state) does not fit schedule 'cosine': 'total' is "
            "'many', expected a whole number >= 1",
        ),
    ],
    ids=["missing", "not fitting"],
)
def test_schedule_state_that_is_missing_or_does_not_fit_is_refused_and_nothing_changes(
    tmp_path: Path,
    make_recipe: RecipeWriter,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    run = tmp_path / "run"
    assert train(make_recipe(train={"schedule": {"name": "cosine"}}), run) == 0
    saved = checkpoint.load(run / "checkpoints/last.pt")
    damage(saved)
    checkpoint.save_atomic(saved, run / "checkpoints/last.pt")
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    assert cli.main(["train", "--resume", str(run)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert expected in err and "Traceback" not in err
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before


def test_a_recipe_yaml_naming_another_optimizer_than_last_pt_is_refused_and_nothing_changes(
    tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    recipe = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8"))
    recipe["train"]["optimizer"] = {"name": "sgd"}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    assert cli.main(["train", "--resume", str(run), "--set", "train.epochs=3"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "it was trained with optimizer/adam, which the recipe no longer names" in err
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before
