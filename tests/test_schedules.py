"""Learning-rate schedules (train.schedule): each built-in's curve, numerically; the trainer drives them per step
and per validation; older recipes' train.lr_decay and train.min_lr are the plateau schedule's settings; a third
party's schedule is found through the registry and trains."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from recipe_helpers import parse, parse_error

from transduce._cli import main as cli
from transduce._model import assembly as pipeline
from transduce._plugins.registry import Registry
from transduce._recipe.recipe import dump_recipe, resolve_component
from transduce._runs import checkpoint
from transduce.testing import assert_conforms, assert_discovered

RecipeWriter = Callable[..., Path]
#: The tiny recipe (conftest) trains 6 steps per epoch.
STEPS_PER_EPOCH = 6


def schedule(registry: Registry, name: str, **params: Any) -> Any:
    """The registry's schedule `name`, built from a spec as a recipe gives it."""
    spec = resolve_component(registry, "schedule", {"name": name, **params})
    return pipeline.build(registry, "schedule", spec, "train.schedule")


def curve(registry: Registry, name: str, last: int, total: int = 10, base: float = 1.0, **params: Any) -> list[float]:
    """The rate of the step after 0, 1, ..., `last` steps, of a run of `total` steps from `base`."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    built = schedule(registry, name, **params)
    built.start(optimizer, total)
    rates = [optimizer.param_groups[0]["lr"]]
    for step in range(1, last + 1):
        built.after_step(optimizer, step)
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def log(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


# --- the curves ------------------------------------------------------------------------------------


def test_warmup_rises_linearly_to_the_base_rate_then_falls_with_the_inverse_square_root(registry: Registry) -> None:
    rates = curve(registry, "warmup", 15, warmup_steps=4)
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # steps 1-4: n / warmup_steps
    assert rates[4:6] == pytest.approx([0.894427191, 0.8164965809])  # sqrt(4 / 5), sqrt(4 / 6)
    assert rates[15] == pytest.approx(0.5)  # step 16: sqrt(4 / 16)
    assert max(rates) == rates[3] == 1.0  # the peak is train.lr, at step warmup_steps


def test_warmup_with_a_model_size_follows_noams_formula_with_train_lr_as_its_factor(registry: Registry) -> None:
    warmup, size, factor = 4000, 512, 2.0
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=factor)
    built = schedule(registry, "warmup", warmup_steps=warmup, model_size=size)
    built.start(optimizer, 100_000)
    rates = {1: optimizer.param_groups[0]["lr"]}
    for n in (2, 4000, 16000):
        built.after_step(optimizer, n - 1)
        rates[n] = optimizer.param_groups[0]["lr"]
    for n, rate in rates.items():
        assert rate == pytest.approx(factor * size**-0.5 * min(n**-0.5, n * warmup**-1.5), rel=1e-12)
    assert rates[4000] == pytest.approx(0.0013975424859373686)  # the peak: 2 / sqrt(512 * 4000)
    assert rates[16000] == pytest.approx(rates[4000] / 2)


def test_cosine_falls_over_the_runs_steps_to_min_lr_and_stays_there(registry: Registry) -> None:
    rates = curve(registry, "cosine", 12, total=10, min_lr=0.1)
    assert rates[0] == 1.0
    assert rates[2] == pytest.approx(0.1 + 0.9 * (1 + math.cos(0.2 * math.pi)) / 2)  # 0.914...
    assert rates[5] == pytest.approx(0.55)
    assert rates[10:] == pytest.approx([0.1, 0.1, 0.1])
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))


def test_cosine_with_its_own_steps_ignores_the_runs_length(registry: Registry) -> None:
    rates = curve(registry, "cosine", 8, total=100, steps=4)
    assert rates[2] == pytest.approx(0.5)
    assert rates[4:] == pytest.approx([0.0] * 5)


def test_exponential_multiplies_by_decay_every_every_steps_smoothly_down_to_min_lr(registry: Registry) -> None:
    rates = curve(registry, "exponential", 6, decay=0.5, every=2)
    assert rates == pytest.approx([1.0, 2**-0.5, 0.5, 2**-1.5, 0.25, 2**-2.5, 0.125])
    assert curve(registry, "exponential", 6, decay=0.5, every=2, min_lr=0.2)[4:] == pytest.approx([0.25, 0.2, 0.2])


def test_constant_keeps_the_base_rate_through_steps_and_validations(registry: Registry) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    built = schedule(registry, "constant")
    built.start(optimizer, 10)
    for step in range(1, 6):
        built.after_step(optimizer, step)
        built.after_validation(optimizer, improved=step % 2 == 0)
        assert optimizer.param_groups[0]["lr"] == 0.3


def test_plateau_decays_after_each_validation_without_improvement_never_below_min_lr(registry: Registry) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    built = schedule(registry, "plateau", decay=0.5, min_lr=0.3)
    built.start(optimizer, 10)
    rates = []
    for improved in (False, True, False, False):
        built.after_step(optimizer, 1)  # steps never change a plateau schedule's rate
        built.after_validation(optimizer, improved)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == [0.5, 0.5, 0.3, 0.3]  # 0.25 would be below min_lr
    assert built.validation_param() == "decay"
    assert schedule(registry, "plateau").validation_param() is None  # no decay: no validation needed


@pytest.mark.parametrize("name", ["warmup", "cosine", "exponential"])
def test_step_schedules_keep_each_groups_own_base_rate(registry: Registry, name: str) -> None:
    weights, biases = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [weights], "lr": 1.0}, {"params": [biases], "lr": 0.1}])
    built = schedule(registry, name)
    built.start(optimizer, 50)
    for step in range(1, 8):
        built.after_step(optimizer, step)
        first, second = (group["lr"] for group in optimizer.param_groups)
        assert second == pytest.approx(first / 10)


# --- the trainer drives them --------------------------------------------------------------------------


def test_a_warmup_run_logs_the_rate_of_its_step_each_epoch(
    tmp_path: Path, make_recipe: RecipeWriter, train_run: Callable[..., Path]
) -> None:
    recipe = make_recipe(train={"epochs": 2, "schedule": {"name": "warmup", "warmup_steps": 8}})
    records = log(train_run(recipe, tmp_path / "run"))
    assert [r["step"] for r in records] == [6, 12]
    assert [r["lr"] for r in records] == pytest.approx([0.01 * 7 / 8, 0.01 * math.sqrt(8 / 13)])


def test_a_cosine_run_reaches_min_lr_at_its_last_step(
    tmp_path: Path, make_recipe: RecipeWriter, train_run: Callable[..., Path]
) -> None:
    recipe = make_recipe(train={"epochs": 2, "schedule": {"name": "cosine", "min_lr": 0.001}})
    records = log(train_run(recipe, tmp_path / "run"))
    # 2 epochs of 6 steps: halfway the rate is halfway between train.lr (0.01) and min_lr.
    assert [r["lr"] for r in records] == pytest.approx([0.0055, 0.001])


def test_a_third_party_schedule_is_found_through_the_registry_and_trains(
    tmp_path: Path,
    make_recipe: RecipeWriter,
    train_run: Callable[..., Path],
    expose_distribution: Callable[..., str],
) -> None:
    expose_distribution("halving-support", "0.1", {"halving": "halving_schedule"}, Path(__file__).parent / "support")
    cls = assert_discovered("schedule", "halving")
    assert_conforms(cls, every=3)
    run = train_run(make_recipe(train={"epochs": 2, "schedule": {"name": "halving", "every": 4}}), tmp_path / "run")
    assert [r["lr"] for r in log(run)] == pytest.approx([0.01 / 2, 0.01 / 8])  # halved at step 4; at 8 and 12
    assert (
        json.loads((run / "components.json").read_text(encoding="utf-8"))["schedule/halving"] == "halving-support 0.1"
    )
    assert checkpoint.load(run / "checkpoints/last.pt")["schedule"] == {"halvings": 3}
    assert cli.main(["train", "--resume", str(run), "--set", "train.epochs=3"]) == 0
    assert log(run)[-1]["lr"] == pytest.approx(0.01 / 16)  # and at step 16, in the third epoch (steps 13-18)
    assert checkpoint.load(run / "checkpoints/last.pt")["schedule"] == {"halvings": 4}  # its state came back


# --- recipes ----------------------------------------------------------------------------------------


def test_the_defaults_are_adam_and_plateau_without_decay(registry: Registry) -> None:
    train = parse("data: dates\n", registry)["train"]
    assert train["optimizer"] == {"name": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    assert train["schedule"] == {"name": "plateau", "decay": None, "min_lr": 1e-5}
    assert "lr_decay" not in train and "min_lr" not in train


def test_older_train_lr_decay_and_min_lr_set_the_plateau_schedule(registry: Registry) -> None:
    older = parse("data: dates\ntrain:\n  lr_decay: 0.5\n  min_lr: 0.001\n", registry)
    assert older["train"]["schedule"] == {"name": "plateau", "decay": 0.5, "min_lr": 0.001}
    assert older == parse("data: dates\ntrain:\n  schedule: {name: plateau, decay: 0.5, min_lr: 0.001}\n", registry)
    assert parse(dump_recipe(older), registry) == older  # a run's recipe.yaml reads back the same
    overridden = parse("data: dates\n", registry, ["train.lr_decay=0.25"])
    assert overridden["train"]["schedule"]["decay"] == 0.25


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        ("  lr_decay: 5\n", "r.yaml:4: train.lr_decay: expected number >= 0.01 and <= 1.0 or null, got 5 (too large)"),
        (
            "  schedule: cosine\n  lr_decay: 0.5\n",
            "r.yaml:5: train.lr_decay: sets the plateau schedule's 'decay' (a key of older recipes), but "
            "train.schedule names 'cosine'; remove train.lr_decay (the parameters of 'cosine' go under train.schedule)",
        ),
        (
            "  schedule: {decay: 0.3}\n  lr_decay: 0.5\n",
            "r.yaml:5: train.lr_decay: the older spelling of train.schedule.decay, which the recipe gives too; "
            "keep one",
        ),
        (
            "  schedule: warmpu\n",
            "r.yaml:4: train.schedule.name: unknown schedule 'warmpu'. Did you mean 'warmup'? "
            "(available: constant, cosine, exponential, plateau, warmup)",
        ),
        (
            "  schedule: {name: warmup, warmup: 10}\n",
            "r.yaml:4: train.schedule.warmup: unknown key for schedule 'warmup'. Did you mean 'warmup_steps'?",
        ),
        ("  schedule: {name: cosine, steps: 0}\n", "r.yaml:4: train.schedule.steps: expected integer >= 1 or null"),
    ],
)
def test_schedule_mistakes_are_recipe_errors_at_their_key_and_line(
    registry: Registry, train: str, expected: str
) -> None:
    error = parse_error(f"seed: 1\ndata: dates\ntrain:\n{train}", registry)
    assert str(error).startswith(expected), str(error)
