"""Optimizers: torch's Adam/AdamW beside leangpt's memory-reduced AdamSN and Adafactor."""

from __future__ import annotations

import sys

import torch
import torch.nn as nn

from .adafactor import Adafactor
from .adamsn import AdamSN

__all__ = ["AdamSN", "Adafactor", "build_optimizer", "state_bytes", "adamw_state_bytes", "param_groups"]


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by every tensor in the optimizer's state (moments, factored statistics, steps).

    Under ZeroRedundancyOptimizer: this rank's share only.
    """
    # look ZeRO up only if it was imported: importing torch.distributed.optim costs time and warnings
    zero_cls = getattr(sys.modules.get("torch.distributed.optim"), "ZeroRedundancyOptimizer", None)
    if zero_cls is not None and isinstance(optimizer, zero_cls):
        optimizer = optimizer.optim
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                total += value.numel() * value.element_size()
    return total


def adamw_state_bytes(model: nn.Module) -> int:
    """What torch.optim.AdamW would hold for `model`: two moments per element plus a float32 step."""
    return sum(2 * p.numel() * p.element_size() + 4 for p in model.parameters() if p.requires_grad)


def _subset_norm_names(model: nn.Module, which: str) -> set[str]:
    """Names of the 2-D parameters that get subset-norm step sizes.

    "linear": the weights of nn.Linear layers, as the authors recommend, but not the tied output
    layer: that tensor is also the token embedding, whose rows are tokens of very different
    frequency, and summing over its smaller dimension would give every token one shared step.
    "all_2d": every 2-D parameter, embeddings included.
    """
    names = {name for name, p in model.named_parameters() if p.dim() == 2}
    if which == "all_2d":
        return names
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    linear = set()
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear) and id(module.weight) not in embeddings:
            linear.add(f"{module_name}.weight" if module_name else "weight")
    return names & linear


def param_groups(model: nn.Module, weight_decay: float, subset_norm: set[str] | None = None,
                 dense_lr_ratio: float = 1.0) -> list[dict]:
    """nanoGPT's grouping (decay on >=2-D tensors only); split further by subset-norm when asked.

    Each group's `lr_scale` multiplies the trainer's scheduled learning rate: with subset norms,
    the parameters that stay plain Adam (embeddings, LayerNorm gains, biases) get `dense_lr_ratio`.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [(n, p) for n, p in named if p.dim() >= 2]
    no_decay = [p for n, p in named if p.dim() < 2]
    if subset_norm is None:
        return [{"params": [p for _, p in decay], "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]
    dense = {"subset_norm": False, "lr_scale": dense_lr_ratio}
    groups = [{"params": [p for n, p in decay if n in subset_norm], "weight_decay": weight_decay, "subset_norm": True},
              {"params": [p for n, p in decay if n not in subset_norm], "weight_decay": weight_decay, **dense},
              {"params": no_decay, "weight_decay": 0.0, **dense}]
    return [g for g in groups if g["params"]]


def optimizer_spec(model: nn.Module, config) -> tuple[type, list[dict], dict]:
    """(optimizer class, parameter groups, keyword arguments) for `config.optimizer_variant`."""
    variant, lr = config.optimizer_variant, config.learning_rate
    betas = (config.beta1, config.beta2)
    if variant in ("adam", "adamw"):
        # Adam keeps no weight decay: torch's Adam would apply it as coupled L2, a different method
        wd = config.weight_decay if variant == "adamw" else 0.0
        cls = torch.optim.AdamW if variant == "adamw" else torch.optim.Adam
        # fused on CUDA. On CPU, foreach: the fused CPU kernel is faster on an idle machine (0.5 vs
        # 2.9 ms/step on the seed model) but runs one OpenMP region per tensor, and with the cores
        # shared it measured 8 ms for a single 16x16 layer (bench/bench_optim.py shows both)
        device_type = next(model.parameters()).device.type
        speed = {"fused": True} if device_type == "cuda" else {"foreach": True}
        return cls, param_groups(model, wd), dict(lr=lr, betas=betas, eps=config.eps, **speed)
    if variant == "adamsn":
        groups = param_groups(model, config.weight_decay, _subset_norm_names(model, config.adamsn_params),
                              config.adamsn_dense_lr_ratio)
        return AdamSN, groups, dict(lr=lr, betas=betas, eps=config.eps)
    if variant == "adafactor":
        return Adafactor, param_groups(model, config.weight_decay), dict(
            lr=lr, beta1=config.adafactor_beta1, decay_rate=config.adafactor_decay_rate,
            eps=(None, config.adafactor_eps2), clip_threshold=config.adafactor_clip_threshold,
            relative_step=config.adafactor_relative_step, scale_parameter=config.adafactor_scale_parameter)
    raise ValueError(f"optimizer_variant={variant!r} is not one of adam, adamw, adamsn, adafactor")


def build_optimizer(model: nn.Module, config, zero: bool = False) -> torch.optim.Optimizer:
    """The optimizer named by `config.optimizer_variant`, driven by the trainer's lr schedule.

    `zero=True` (inside a process group) shards its state across ranks with
    ZeroRedundancyOptimizer: each rank keeps the state of its share of the parameters.
    """
    cls, groups, kwargs = optimizer_spec(model, config)
    if not zero:
        return cls(groups, **kwargs)
    from torch.distributed.optim import ZeroRedundancyOptimizer
    return ZeroRedundancyOptimizer(groups, optimizer_class=cls, **kwargs)
