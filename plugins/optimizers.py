"""Built-in optimizers: Adam (the default), AdamW and SGD, as torch implements them.

Each runs torch's fused kernel where the weights live on the CPU or a CUDA GPU: one pass updates every
weight, with the results of the per-tensor loop. `adam` with its defaults builds exactly the optimizer
training used before optimizers were components, so such runs train (and resume) bit for bit as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from transduce.api import Optimizer, Param, ParamError, hookimpl

#: Just below 1: a beta or momentum of 1 would never forget a gradient (torch refuses it).
BELOW_ONE = 0.999999

#: The settings Adam and AdamW share, with torch's defaults.
MOMENT_PARAMS = (
    Param("beta1", float, 0.9, "decay of the running mean of the gradients", min=0.0, max=BELOW_ONE),
    Param("beta2", float, 0.999, "decay of the running mean of the squared gradients", min=0.0, max=BELOW_ONE),
    Param("eps", float, 1e-8, "added to the denominator, for numerical stability", min=0.0, max=1.0),
)


class _TorchOptimizer(Optimizer):
    """One of torch's optimizers, built with the component's settings (`settings`, by torch's keyword)."""

    torch_class: type[torch.optim.Optimizer]
    settings: dict[str, object]

    def build(self, parameters: Sequence[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        parameters = list(parameters)
        fused = all(p.device.type in ("cpu", "cuda") for p in parameters)  # where torch has the fused kernel
        return self.torch_class(parameters, lr=lr, fused=fused, **self.settings)


class Adam(_TorchOptimizer):
    """Adam: per-weight step sizes from running means of the gradients and of their squares."""

    name = "adam"
    params = MOMENT_PARAMS
    torch_class = torch.optim.Adam

    def __init__(self, beta1: float, beta2: float, eps: float) -> None:
        self.settings = {"betas": (beta1, beta2), "eps": eps}


class AdamW(_TorchOptimizer):
    """AdamW: Adam with decoupled weight decay (every step the weights shrink by lr * weight_decay of themselves)."""

    name = "adamw"
    params = (
        *MOMENT_PARAMS,
        Param("weight_decay", float, 0.01, "decoupled weight decay, scaled by the learning rate", min=0.0, max=1.0),
    )
    torch_class = torch.optim.AdamW

    def __init__(self, beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
        self.settings = {"betas": (beta1, beta2), "eps": eps, "weight_decay": weight_decay}


class SGD(_TorchOptimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay."""

    name = "sgd"
    params = (
        Param(
            "momentum",
            float,
            0.0,
            "share of the previous update added to this one (0: plain SGD)",
            min=0.0,
            max=BELOW_ONE,
        ),
        Param("nesterov", bool, False, "Nesterov momentum: the gradient is taken one momentum step ahead"),
        Param("weight_decay", float, 0.0, "L2 penalty: this times the weights joins the gradients", min=0.0, max=1.0),
    )
    torch_class = torch.optim.SGD

    def __init__(self, momentum: float, nesterov: bool, weight_decay: float) -> None:
        if nesterov and momentum <= 0:
            raise ParamError(
                "nesterov",
                "Nesterov momentum needs a momentum above 0, and momentum is 0; set momentum (e.g. 0.9) "
                "or nesterov: false",
            )
        self.settings = {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay}


@hookimpl
def transduce_components() -> list[type[Optimizer]]:
    return [Adam, AdamW, SGD]
