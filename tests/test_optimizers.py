"""Optimizers (train.optimizer): `adam` trains exactly as training did before optimizers were components, AdamW
and SGD update weights as torch's own do, and their mistakes are recipe errors at their key."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from recipe_helpers import parse_error

from transduce._model import assembly as pipeline
from transduce._plugins.registry import Registry
from transduce._recipe.recipe import load_recipe, resolve_component
from transduce._runs import checkpoint
from transduce.errors import RecipeError

RecipeWriter = Callable[..., Path]


def optimizer_over(registry: Registry, module: torch.nn.Module, name: str, lr: float, **params: Any) -> Any:
    """The registry's optimizer `name` (a spec as a recipe gives it) built over `module`'s weights."""
    spec = resolve_component(registry, "optimizer", {"name": name, **params})
    return pipeline.build(registry, "optimizer", spec, "train.optimizer").build(list(module.parameters()), lr)


def fit(module: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int = 5) -> None:
    """`steps` steps on a fixed squared error (the same data for every caller)."""
    generator = torch.Generator().manual_seed(3)
    inputs, targets = torch.randn(8, 4, generator=generator), torch.randn(8, 3, generator=generator)
    for _ in range(steps):
        optimizer.zero_grad()
        ((module(inputs) - targets) ** 2).mean().backward()
        optimizer.step()


def twins() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    return module, copy.deepcopy(module)


def test_adam_with_its_defaults_is_the_fused_adam_training_used_before(registry: Registry) -> None:
    ours, theirs = twins()
    built = optimizer_over(registry, ours, "adam", 0.01)
    plain = torch.optim.Adam(theirs.parameters(), lr=0.01, fused=True)  # what the trainer built before
    fit(ours, built), fit(theirs, plain)
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters(), strict=True))
    assert built.state_dict()["param_groups"] == plain.state_dict()["param_groups"]


def test_a_default_run_trains_bit_for_bit_as_with_a_plain_torch_adam(
    tmp_path: Path, make_recipe: RecipeWriter, train_run: Callable[..., Path], trained_run: Path, monkeypatch: Any
) -> None:
    def plain_adam(registry: Registry, recipe: dict[str, Any], parameters: list[torch.nn.Parameter]) -> Any:
        return torch.optim.Adam(parameters, lr=recipe["train"]["lr"], fused=True)

    monkeypatch.setattr(pipeline, "optimizer", plain_adam)  # the trainer's construction before this change
    run = train_run(make_recipe(train={"epochs": 2}), tmp_path / "plain")  # the recipe trained_run trains
    mine, plain = (checkpoint.load(r / "checkpoints/last.pt") for r in (trained_run, run))
    assert [k for k in mine["model"] if not torch.equal(mine["model"][k], plain["model"][k])] == []
    assert mine["optimizer"]["param_groups"] == plain["optimizer"]["param_groups"]


@pytest.mark.parametrize(
    ("name", "params", "reference"),
    [
        ("adamw", {}, functools.partial(torch.optim.AdamW, weight_decay=0.01)),
        (
            "adamw",
            {"weight_decay": 0.2, "beta1": 0.8},
            functools.partial(torch.optim.AdamW, weight_decay=0.2, betas=(0.8, 0.999)),
        ),
        ("sgd", {}, torch.optim.SGD),
        (
            "sgd",
            {"momentum": 0.9, "weight_decay": 0.01},
            functools.partial(torch.optim.SGD, momentum=0.9, weight_decay=0.01),
        ),
        ("sgd", {"momentum": 0.9, "nesterov": True}, functools.partial(torch.optim.SGD, momentum=0.9, nesterov=True)),
    ],
)
def test_adamw_and_sgd_update_the_weights_as_torchs_own_implementations(
    registry: Registry, name: str, params: dict[str, Any], reference: Any
) -> None:
    ours, theirs = twins()
    before = [p.detach().clone() for p in ours.parameters()]
    fit(ours, optimizer_over(registry, ours, name, 0.05, **params))
    fit(theirs, reference(theirs.parameters(), lr=0.05, foreach=False))  # torch's per-tensor loop
    for mine, torchs, old in zip(ours.parameters(), theirs.parameters(), before, strict=True):
        assert not torch.equal(mine, old)
        torch.testing.assert_close(mine, torchs)


def test_adamw_shrinks_weights_by_lr_times_weight_decay_even_without_gradient(registry: Registry) -> None:
    weight = torch.nn.Parameter(torch.full((3,), 2.0))
    optimizer = optimizer_over(registry, torch.nn.ParameterList([weight]), "adamw", 0.1, weight_decay=0.5)
    weight.grad = torch.zeros(3)
    optimizer.step()
    assert torch.allclose(weight.detach(), torch.full((3,), 2.0 * (1 - 0.1 * 0.5)))


def test_nesterov_without_momentum_is_refused_at_its_key_with_the_recipe_line(
    tmp_path: Path, registry: Registry
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("data: dates\ntrain:\n  optimizer:\n    name: sgd\n    nesterov: true\n", encoding="utf-8")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, registry, check=functools.partial(pipeline.check, registry))
    assert str(caught.value) == (
        f"{path}:5: train.optimizer.nesterov: optimizer 'sgd' refuses this setting: Nesterov momentum needs a "
        "momentum above 0, and momentum is 0; set momentum (e.g. 0.9) or nesterov: false"
    )


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        (
            "  optimizer: sdg\n",
            "r.yaml:3: train.optimizer.name: unknown optimizer 'sdg'. Did you mean 'sgd'? "
            "(available: adam, adamw, sgd)",
        ),
        ("  optimizer: {name: adam, beta1: 1.0}\n", "r.yaml:3: train.optimizer.beta1: expected number >= 0.0 and "),
        (
            "  optimizer: {name: sgd, momentun: 0.9}\n",
            "r.yaml:3: train.optimizer.momentun: unknown key for optimizer 'sgd'. Did you mean 'momentum'?",
        ),
        ("  optimizer: 3\n", "r.yaml:3: train.optimizer: expected a optimizer name or a mapping with 'name', got 3"),
    ],
)
def test_optimizer_mistakes_are_recipe_errors_at_their_key_and_line(
    registry: Registry, train: str, expected: str
) -> None:
    error = parse_error(f"data: dates\ntrain:\n{train}", registry)
    assert str(error).startswith(expected), str(error)
