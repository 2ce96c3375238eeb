"""Gradient accumulation (train.accumulate) and token batches (train.batch_tokens) in training: N batches make
one optimizer step with the gradient of one batch of all their pairs, steps and checkpoints count optimizer
steps, a stop within an accumulation finishes its step, and runs resume mid-epoch to the uninterrupted result."""

from __future__ import annotations

import itertools
import math
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from test_resume import assert_same_training, log, signal_at_step, train

from transduce._cli import main as cli
from transduce._data.batching import Batch, EncodedPair, accumulation_shares, make_batch
from transduce._plugins.registry import discover
from transduce._recipe.recipe import load_recipe
from transduce._runs import checkpoint
from transduce._runs.rundir import RunDir
from transduce._training import trainer as training
from transduce.errors import TransduceError

RecipeWriter = Callable[..., Path]
NO_DROPOUT = {"dropout": 0.0, "decoder": {"dropout": 0.0}}


def new_trainer(recipe_path: Path, run_path: Path) -> training.Trainer:
    """A Trainer of the recipe in a new run directory, as `transduce train` makes it."""
    registry = discover()
    recipe = load_recipe(recipe_path, registry)
    run = RunDir.create(run_path)
    training.start_run(recipe, run)
    return training.Trainer(recipe, registry, run, Console(quiet=True))


def prepared_trainer(recipe_path: Path, run_path: Path) -> training.Trainer:
    """A Trainer with its data, model and optimizer made, ready to take steps."""
    trainer = new_trainer(recipe_path, run_path)
    trainer._prepare(resume=False, last=None)
    return trainer


def random_pairs(count: int, vocab_size: int, seed: int = 0) -> list[EncodedPair]:
    """Pairs of very different lengths, so that batches hold very different numbers of target tokens."""
    rng = random.Random(seed)
    token = lambda: rng.randrange(4, vocab_size)  # noqa: E731 - past the specials
    return [
        EncodedPair([token() for _ in range(rng.randint(1, 25))], [token() for _ in range(rng.randint(1, 14))])
        for _ in range(count)
    ]


def gradient(trainer: training.Trainer) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])


def unequal_parts(trainer: training.Trainer) -> tuple[list[Batch], Batch]:
    """Three batches of 5, 11 and 8 pairs (different target tokens), and one batch of all 24."""
    vocab = trainer.target_vocab
    pairs = random_pairs(24, min(len(trainer.source_vocab), len(vocab)))
    parts = [make_batch(pairs[:5], vocab), make_batch(pairs[5:16], vocab), make_batch(pairs[16:], vocab)]
    assert len({b.target_tokens for b in parts}) == 3
    return parts, make_batch(pairs, vocab)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_accumulated_batches_give_the_gradient_of_one_batch_of_all_their_pairs(
    tmp_path: Path, make_recipe: RecipeWriter, label_smoothing: float
) -> None:
    recipe = make_recipe(model=NO_DROPOUT, train={"label_smoothing": label_smoothing})
    trainer = prepared_trainer(recipe, tmp_path / "run")
    parts, whole = unequal_parts(trainer)
    trainer._step(whole, 1.0, update=False)
    expected = gradient(trainer)

    trainer.optimizer.zero_grad(set_to_none=True)
    for batch, share in zip(parts, accumulation_shares(parts, 3), strict=True):
        trainer._step(batch, share, update=False)
    assert torch.allclose(gradient(trainer), expected, atol=1e-6, rtol=1e-5)

    trainer.optimizer.zero_grad(set_to_none=True)
    for batch in parts:  # a plain mean of the batches' mean losses is not the same: the test tells them apart
        trainer._step(batch, 1 / len(parts), update=False)
    assert not torch.allclose(gradient(trainer), expected, atol=1e-5)


def test_accumulated_batches_make_one_optimizer_step_like_one_batch_of_all_their_pairs(
    tmp_path: Path, make_recipe: RecipeWriter
) -> None:
    recipe = make_recipe(model=NO_DROPOUT)
    accumulating, whole_batch = prepared_trainer(recipe, tmp_path / "a"), prepared_trainer(recipe, tmp_path / "b")
    parts, whole = unequal_parts(accumulating)
    for index, (batch, share) in enumerate(zip(parts, accumulation_shares(parts, 3), strict=True)):
        accumulating._step(batch, share, update=index == len(parts) - 1)
        assert accumulating.state.step == (index == len(parts) - 1)  # the step comes with the last batch
    assert all(p.grad is None for p in accumulating.model.parameters())  # cleared once applied
    whole_batch._step(whole)
    assert whole_batch.state.step == 1
    # Adam's first update is about lr x the gradient's sign, which rounding flips where a gradient is ~0; its
    # moments are linear in the (clipped) gradient it was given: the same, up to rounding.
    mine, theirs = accumulating.optimizer.state_dict()["state"], whole_batch.optimizer.state_dict()["state"]
    for key in ("exp_avg", "exp_avg_sq"):
        assert all(torch.allclose(mine[i][key], theirs[i][key], atol=1e-8, rtol=1e-4) for i in theirs), key
    untrained = prepared_trainer(recipe, tmp_path / "c").model.state_dict()
    stepped = accumulating.model.state_dict()
    assert all(not torch.equal(stepped[k], value) for k, value in untrained.items() if "weight" in k)


# --- steps, checkpoints, stops and resuming ----------------------------------------------------------------


def record_progress(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Every checkpoint written: (file name, optimizer step, batches of the epoch done); best.pt gives -1s."""
    saves: list[tuple[str, int, int]] = []
    real_save = checkpoint.save_atomic

    def save(payload: dict[str, Any], path: Path) -> None:
        real_save(payload, path)
        progress = payload.get("progress", {})
        saves.append((path.name, progress.get("step", -1), progress.get("batch", -1)))

    monkeypatch.setattr(checkpoint, "save_atomic", save)
    return saves


def test_accumulate_counts_optimizer_steps_and_checkpoint_every_counts_them_too(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tiny recipe's epoch has 6 batches: accumulate 4 makes a step of 4 batches and one of the last 2.
    saves = record_progress(monkeypatch)
    run = tmp_path / "run"
    assert train(make_recipe(train={"epochs": 2, "accumulate": 4, "checkpoint_every": 1}), run) == 0
    assert [r["step"] for r in log(run)] == [2, 4]
    # Within an epoch, last.pt is written after each step, at its batch boundary (4 of 6); at the epoch's end
    # after the epoch (batch 0 of the next).
    assert [(name, step, batch) for name, step, batch in saves if name == "last.pt"] == [
        ("last.pt", 1, 4),
        ("last.pt", 2, 0),
        ("last.pt", 3, 4),
        ("last.pt", 4, 0),
    ]


def stop_and_resume(
    recipe: Path, root: Path, at_batch: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[str, dict[str, Any], str]:
    """Train `recipe` with a SIGTERM during its `at_batch`-th batch, then again to the end, and check that the
    result is the uninterrupted run's; returns the stop's message, last.pt's progress and the resume's output."""
    assert train(recipe, root / "reference") == 0
    run = root / "run"
    signal_at_step(monkeypatch, at_batch)
    assert train(recipe, run) == 143
    stopped = " ".join(capsys.readouterr().err.split())
    progress = checkpoint.load(run / "checkpoints/last.pt")["progress"]
    monkeypatch.undo()
    assert train(recipe, run) == 0
    resumed = capsys.readouterr().out
    assert_same_training(run, root / "reference")
    return stopped, progress, resumed


def test_a_stop_within_an_accumulation_finishes_its_step_then_resumes_to_the_uninterrupted_result(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = make_recipe(train={"epochs": 2, "accumulate": 2})
    # Batch 9 is epoch 2's third, the first of its second step: the step is finished (both its batches) before
    # stopping, so no gradient is lost or added twice.
    stopped, progress, resumed = stop_and_resume(recipe, tmp_path, 9, monkeypatch, capsys)
    assert "stopped by SIGTERM at step 5 (epoch 2, batch 4 of 6)" in stopped
    assert (progress["epoch"], progress["step"], progress["batch"]) == (1, 5, 4)
    assert "resuming epoch 2 after batch 4 (step 5)" in resumed


def test_token_batches_resume_mid_epoch_to_the_uninterrupted_result(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = make_recipe(train={"epochs": 2, "batch_tokens": 500, "checkpoint_every": 3})
    # 300 pairs of 10 to 29 characters in batches of 500 tokens: about 17 batches an epoch.
    stopped, progress, resumed = stop_and_resume(recipe, tmp_path, 21, monkeypatch, capsys)
    assert (progress["epoch"], progress["batch"]) == (1, progress["step"] - progress["history"][0]["step"])
    assert progress["history"][0]["step"] > 6  # not the 6 batches of 64 sentences
    assert f"resuming epoch 2 after batch {progress['batch']}" in resumed


def test_changing_batch_tokens_or_accumulate_on_resume_is_refused_and_touches_nothing(
    tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    for change in ("train.batch_tokens=400", "train.accumulate=2"):
        assert cli.main(["train", "--resume", str(run), "--set", "train.epochs=3", "--set", change]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "the recipe differs from the one this run was started with" in err
        assert change.split("=")[0] in err
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before


def test_a_loss_going_nan_within_an_accumulation_names_the_optimizer_step(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_loss, batches = training.sequence_loss, itertools.count(1)

    def nan_from_batch_3(*args: Any, **kwargs: Any) -> torch.Tensor:
        return real_loss(*args, **kwargs) * (1.0 if next(batches) < 3 else math.nan)

    monkeypatch.setattr(training, "sequence_loss", nan_from_batch_3)
    trainer = new_trainer(make_recipe(train={"accumulate": 2}), tmp_path / "run")
    with pytest.raises(TransduceError, match=r"the loss became nan at step 2 \(epoch 1\)"):
        trainer.train()
