"""A test-support plugin: the `halving` schedule, a third party's learning-rate schedule with state of its own."""

from __future__ import annotations

from typing import Any

import torch

from transduce.api import Param, Schedule, hookimpl


class Halving(Schedule):
    """Halve the learning rate every `every` steps; counts its halvings (kept in its state)."""

    name = "halving"
    params = (Param("every", int, 2, "halve the rate after every this many steps", min=1),)

    def __init__(self, every: int) -> None:
        self.every, self.halvings = every, 0

    def after_step(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        if step % self.every == 0:
            self.halvings += 1
            for group in optimizer.param_groups:
                group["lr"] = group["lr"] / 2

    def state_dict(self) -> dict[str, Any]:
        return {"halvings": self.halvings}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.halvings = int(state["halvings"])


@hookimpl
def transduce_components() -> list[type[Schedule]]:
    return [Halving]
