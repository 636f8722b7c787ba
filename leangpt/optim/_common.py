"""Argument checks shared by leangpt's optimizers: every bad hyper-parameter is a ValueError."""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer


def check_nonnegative(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"invalid {name}={value!r}: must be a finite number >= 0")


def check_betas(betas) -> None:
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"invalid betas={betas!r}: both must be in [0, 1)")


def check_grads(params, optimizer_name: str) -> None:
    for p in params:
        if p.grad.is_sparse:
            raise ValueError(f"{optimizer_name} does not support sparse gradients")


class VectorizedOptimizer(Optimizer):
    """step() for optimizers that update a whole parameter group at once.

    Subclasses define `_init_state(p, group)` (create a parameter's state on first use) and
    `_update(group, params, states)` (one step for the group's parameters that have gradients).
    """

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            check_grads(params, type(self).__name__)
            self._update(group, params, [self._init_state(p, group) for p in params])
        return loss

    def _init_state(self, p: torch.Tensor, group: dict) -> dict:
        raise NotImplementedError

    def _update(self, group: dict, params: list, states: list) -> None:
        raise NotImplementedError
