"""The conformance kit on optimizers and schedules: a broken one of each kind fails at the contract point it breaks,
and `transduce plugins --check` covers both families."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import nn

from transduce._cli import main as cli
from transduce.api import Optimizer, Param, Schedule
from transduce.testing import check_component, check_optimizer, check_schedule

# --- optimizers ------------------------------------------------------------------------------------


class AscendingOptimizer(Optimizer):
    """Climbs the loss instead of descending it."""

    name = "ascending"

    def build(self, parameters: Sequence[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(parameters, lr=lr, maximize=True)


class PartialOptimizer(Optimizer):
    """Updates only the first weight."""

    name = "partial"

    def build(self, parameters: Sequence[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(list(parameters)[:1], lr=lr)


class FixedRateOptimizer(Optimizer):
    """Ignores the base rate it is given."""

    name = "fixed_rate"

    def build(self, parameters: Sequence[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(parameters, lr=0.5)


class ListOptimizer(Optimizer):
    """Returns its parameters instead of an optimizer."""

    name = "list"

    def build(self, parameters: Sequence[nn.Parameter], lr: float) -> Any:
        return list(parameters)


class _Amnesiac(torch.optim.SGD):
    """SGD with momentum whose saved state leaves the momentum out."""

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "state": {}}


class AmnesiacOptimizer(Optimizer):
    """Momentum that a checkpoint does not keep."""

    name = "amnesiac"

    def build(self, parameters: Sequence[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        return _Amnesiac(parameters, lr=lr, momentum=0.9)


class _OwnRate(torch.optim.Optimizer):
    """Gradient descent at a rate of its own: the groups' lr changes nothing."""

    def __init__(self, parameters: Sequence[nn.Parameter], lr: float) -> None:
        super().__init__(parameters, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for weight in group["params"]:
                weight.add_(weight.grad, alpha=-0.01)


class OwnRateOptimizer(Optimizer):
    """Steps at 0.01 whatever a schedule sets."""

    name = "own_rate"

    def build(self, parameters: Sequence[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        return _OwnRate(parameters, lr)


# --- schedules -------------------------------------------------------------------------------------


class CountingSchedule(Schedule):
    """Divides the rate by the validations seen, but keeps the count out of its state."""

    name = "counting"

    def start(self, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        self.base, self.seen = optimizer.param_groups[0]["lr"], 0

    def after_validation(self, optimizer: torch.optim.Optimizer, improved: bool) -> None:
        self.seen += 1
        for group in optimizer.param_groups:
            group["lr"] = self.base / (1 + self.seen)


class NanSchedule(Schedule):
    """Sets a rate that is not a number."""

    name = "nan"

    def after_step(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = float("nan")


class MeddlingSchedule(Schedule):
    """Shrinks the weights itself."""

    name = "meddling"

    def after_step(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        with torch.no_grad():
            for group in optimizer.param_groups:
                for weight in group["params"]:
                    weight.mul_(0.5)


class _Opaque:
    """Something last.pt cannot load without unpickling code."""


class OpaqueStateSchedule(Schedule):
    """Keeps an object of its own class in its state."""

    name = "opaque_state"

    def state_dict(self) -> dict[str, Any]:
        return {"memory": _Opaque()}


class UndeclaredValidationSchedule(Schedule):
    """Names a parameter it does not declare as the one that needs validation."""

    name = "undeclared_validation"
    params = (Param("factor", float, 0.5, "a factor", min=0.0),)

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def validation_param(self) -> str | None:
        return "decay"


BROKEN = [
    (AscendingOptimizer, "steps on a squared error: the loss did not go down"),
    (PartialOptimizer, "the groups must hold each of the 4 parameters once"),
    (FixedRateOptimizer, "every group's lr must start at the rate given, 0.01 (schedules change it), got [0.5]"),
    (ListOptimizer, "build(the parameters of a small model, lr=0.01): expected a torch.optim.Optimizer, got list"),
    (AmnesiacOptimizer, "the resumed optimizer updates 0.weight, 0.bias, 2.weight, 2.bias otherwise"),
    (OwnRateOptimizer, "with every group's lr set to 0 (as a schedule sets rates): the weights 0.weight"),
    (CountingSchedule, "the resumed schedule sets [0.005, 0.005] but one that never stopped [0.0016666666666666668"),
    (NanSchedule, "after_step(optimizer, 1): the groups' lr must be finite numbers >= 0, got [nan, nan]"),
    (MeddlingSchedule, "the weights changed: a schedule sets only the groups' lr"),
    (OpaqueStateSchedule, "cannot be saved and loaded without unpickling code"),
    (
        UndeclaredValidationSchedule,
        "validation_param(): expected None or the name of a declared parameter, got 'decay'",
    ),
]


@pytest.mark.parametrize(("cls", "expected"), BROKEN, ids=[cls.name for cls, _ in BROKEN])
def test_a_broken_optimizer_or_schedule_fails_with_the_contract_point(cls: type, expected: str) -> None:
    problems = check_component(cls)
    assert problems, f"{cls.__name__} passed the kit"
    assert any(expected in problem for problem in problems), problems


def test_the_family_checks_refuse_a_class_of_the_other_family() -> None:
    assert check_optimizer(NanSchedule) == [
        f"family: expected a optimizer (a subclass of Optimizer), got {NanSchedule!r}"
    ]
    assert check_schedule(AscendingOptimizer)[0].startswith("family: expected a schedule (a subclass of Schedule)")


def test_plugins_check_covers_optimizers_and_schedules(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    assert cli.main(["plugins", "--check"]) == 0
    rows = [line.split("│")[1:5] for line in capsys.readouterr().out.splitlines() if line.startswith("│ ")]
    checked = {(family.strip(), name.strip()): result.strip() for family, name, _, result in rows}
    expected = {("optimizer", name) for name in ("adam", "adamw", "sgd")}
    expected |= {("schedule", name) for name in ("constant", "cosine", "exponential", "plateau", "warmup")}
    assert {key: checked.get(key) for key in expected} == dict.fromkeys(expected, "ok")
