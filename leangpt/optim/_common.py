"""Argument checks shared by leangpt's optimizers: every bad hyper-parameter is a ValueError."""

from __future__ import annotations

import math


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
