"""torch's Adam and AdamW with nanoGPT's parameter groups."""

from __future__ import annotations

import torch

from .groups import param_groups


def _speed(model) -> dict:
    # fused on CUDA. On CPU, foreach: the fused CPU kernel is faster on an idle machine but runs
    # one OpenMP region per tensor, which is far slower when the cores are shared (docs/benchmarks.md)
    device_type = next(model.parameters()).device.type
    return {"fused": True} if device_type == "cuda" else {"foreach": True}


def adam_spec(model, config):
    # no weight decay: torch's Adam would apply it as coupled L2, a different method than AdamW's
    return torch.optim.Adam, param_groups(model, 0.0), dict(
        lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.eps, **_speed(model))


def adamw_spec(model, config):
    return torch.optim.AdamW, param_groups(model, config.weight_decay), dict(
        lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.eps, **_speed(model))
