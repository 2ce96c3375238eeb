"""Built-in learning-rate schedules: plateau (the default), warmup, cosine, exponential and constant.

The step-driven ones (warmup, cosine, exponential) compute each parameter group's rate from its base rate
(the group's `lr` when the schedule starts: train.lr) and the steps trained so far, so a resumed run gets
exactly the rates of one that never stopped (cosine also keeps its horizon in its state). `plateau` lowers
the rates after validations, in the optimizer's own groups, which last.pt saves with the optimizer.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from transduce.api import Param, Schedule, hookimpl


def _min_lr(default: float) -> Param:
    return Param(
        "min_lr", float, default, "the rate never goes below this (nor rises to it from a lower base rate)", min=0.0
    )


class _ByStep(Schedule):
    """A rate that is a function of the group's base rate and of the steps trained: `rate(base, steps)`."""

    def start(self, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        self.bases = [float(group["lr"]) for group in optimizer.param_groups]
        self._set(optimizer, 0)

    def after_step(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        self._set(optimizer, step)

    def _set(self, optimizer: torch.optim.Optimizer, steps: int) -> None:
        for group, base in zip(optimizer.param_groups, self.bases, strict=True):
            group["lr"] = self.rate(base, steps)

    def rate(self, base: float, steps: int) -> float:
        """The rate of the step that follows `steps` steps, for a group whose base rate is `base`."""
        raise NotImplementedError


class Plateau(Schedule):
    """Multiply the rate by `decay` after every validation without improvement (null decay: a constant rate)."""

    name = "plateau"
    params = (
        Param(
            "decay",
            float,
            None,
            "multiply the learning rate by this after every validation without improvement (null: constant); "
            "needs a valid split",
            min=0.01,
            max=1.0,
            nullable=True,
        ),
        _min_lr(1e-5),
    )

    def __init__(self, decay: float | None, min_lr: float) -> None:
        self.decay, self.min_lr = decay, min_lr

    def after_validation(self, optimizer: torch.optim.Optimizer, improved: bool) -> None:
        if improved or self.decay is None:
            return
        for group in optimizer.param_groups:
            group["lr"] = max(group["lr"] * self.decay, min(group["lr"], self.min_lr))

    def validation_param(self) -> str | None:
        return None if self.decay is None else "decay"


class Warmup(_ByStep):
    """Linear warm-up to the base rate over `warmup_steps`, then decay with the inverse square root of the step
    (the Transformer's "Noam" schedule)."""

    name = "warmup"
    params = (
        Param("warmup_steps", int, 4000, "steps of linear warm-up; the rate peaks at this step", min=1),
        Param(
            "model_size",
            int,
            None,
            "null: the peak rate is train.lr. A size d: Noam's formula, train.lr * d^-0.5 * min(n^-0.5, "
            "n * warmup_steps^-1.5) at step n, so train.lr is its scale factor (the peak is lower)",
            min=1,
            nullable=True,
        ),
    )

    def __init__(self, warmup_steps: int, model_size: int | None) -> None:
        self.warmup_steps = warmup_steps
        self.scale = 1.0 if model_size is None else (model_size * warmup_steps) ** -0.5

    def rate(self, base: float, steps: int) -> float:
        n, warmup = steps + 1, self.warmup_steps  # n: the step about to be made, counted from 1
        return base * self.scale * min(n / warmup, math.sqrt(warmup / n))


class Cosine(_ByStep):
    """Half a cosine from the base rate down to `min_lr` over the run's steps (or `steps`), then `min_lr`."""

    name = "cosine"
    params = (
        Param(
            "steps",
            int,
            None,
            "steps the rate takes to reach min_lr (null: all the run's steps, train.epochs times the steps per "
            "epoch, as counted when the run started)",
            min=1,
            nullable=True,
        ),
        _min_lr(0.0),
    )

    def __init__(self, steps: int | None, min_lr: float) -> None:
        self.steps, self.min_lr = steps, min_lr

    def start(self, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        self.total = max(self.steps or total_steps, 1)
        super().start(optimizer, total_steps)

    def rate(self, base: float, steps: int) -> float:
        floor = min(self.min_lr, base)
        return floor + (base - floor) * (1.0 + math.cos(math.pi * min(steps, self.total) / self.total)) / 2.0

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total}  # a resumed run keeps its curve, even with more epochs

    def load_state_dict(self, state: dict[str, Any]) -> None:
        total = state["total"]
        if not isinstance(total, int) or isinstance(total, bool) or total < 1:
            raise ValueError(f"'total' is {total!r}, expected a whole number >= 1")
        self.total = total


class Exponential(_ByStep):
    """Multiply the rate by `decay` every `every` steps, smoothly (by decay^(1/every) after each step)."""

    name = "exponential"
    params = (
        Param("decay", float, 0.5, "factor the rate is multiplied by every `every` steps", min=0.01, max=1.0),
        Param("every", int, 1000, "steps over which the rate is multiplied by `decay`", min=1),
        _min_lr(0.0),
    )

    def __init__(self, decay: float, every: int, min_lr: float) -> None:
        self.decay, self.every, self.min_lr = decay, every, min_lr

    def rate(self, base: float, steps: int) -> float:
        return max(base * self.decay ** (steps / self.every), min(base, self.min_lr))


class Constant(Schedule):
    """The base rate (train.lr) throughout."""

    name = "constant"


@hookimpl
def transduce_components() -> list[type[Schedule]]:
    return [Plateau, Warmup, Cosine, Exponential, Constant]
