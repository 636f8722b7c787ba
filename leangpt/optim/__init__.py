"""Optimizers: torch's Adam/AdamW, leangpt's AdamSN, AdamSNSM and Adafactor, and the wider field.

Written here: AdamSN, AdamSNSM (the methods this project studies) and Adafactor (torch's own
differs from the paper's factored update, see adafactor.py). Glued from maintained libraries:
Muon and Adam/AdamW (torch), Lion, Adam-mini, CAME, SM3, GaLore, APOLLO (pytorch-optimizer, the
`optimizers` extra), AdamW8bit (torchao). Which module builds which variant is the registry's
(leangpt/variants.py); this module builds them and measures their state.
"""

from __future__ import annotations

import sys

import torch
import torch.nn as nn

from ..variants import COMPILED_STEP_VARIANTS, VARIANTS, resolve
from .adafactor import Adafactor
from .adamsn import AdamSN
from .adamsnsm import AdamSNSM
from .groups import param_groups
from .in_backward import StepInBackward
from .muon import MuonWithAdamW

__all__ = ["AdamSN", "AdamSNSM", "Adafactor", "MuonWithAdamW", "build_optimizer", "state_bytes", "state_tensors",
           "adamw_state_bytes", "param_groups", "load_variant",
           "optimizer_spec", "COMPILED_STEP_VARIANTS", "StepInBackward"]


def _unwrap_zero(optimizer):
    # look ZeRO up only if it was imported: importing torch.distributed.optim costs time and warnings
    zero_cls = getattr(sys.modules.get("torch.distributed.optim"), "ZeroRedundancyOptimizer", None)
    return optimizer.optim if zero_cls is not None and isinstance(optimizer, zero_cls) else optimizer


def _collect_tensors(value, out: list) -> None:
    if torch.is_tensor(value):
        if type(value) is not torch.Tensor and hasattr(value, "__tensor_flatten__"):
            # a tensor subclass (torchao's 8-bit state): what it stores are its inner tensors
            # (codes, block scales, code book), not numel() elements of its nominal dtype
            for name in value.__tensor_flatten__()[0]:
                _collect_tensors(getattr(value, name), out)
        else:
            out.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_tensors(item, out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect_tensors(item, out)
    elif hasattr(value, "__dict__") and not callable(value):  # a projector object (GaLore, APOLLO)
        _collect_tensors(vars(value), out)


def state_tensors(state: dict) -> list[torch.Tensor]:
    """The plain tensors one parameter's optimizer state holds, found inside subclasses and objects."""
    out: list[torch.Tensor] = []
    _collect_tensors(state, out)
    return out


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors` (a view of a counted storage adds nothing)."""
    seen, total = set(), 0
    for t in tensors:
        storage = t.untyped_storage()
        fake = getattr(t, "fake_mode", None) is not None  # a FakeTensor (memory estimates) has no address
        key = id(t) if fake else (storage.data_ptr() or id(t))
        if key not in seen:
            seen.add(key)
            total += storage.nbytes()
    return total


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's state (moments, factored statistics, projections, steps),
    measured from the storages it holds. Under ZeroRedundancyOptimizer: this rank's share only."""
    optimizer = _unwrap_zero(optimizer)
    return storage_bytes(t for state in optimizer.state.values() for t in state_tensors(state))


def adamw_state_bytes(model: nn.Module) -> int:
    """What torch.optim.AdamW would hold for `model`: two moments per element plus a float32 step."""
    return sum(2 * p.numel() * p.element_size() + 4 for p in model.parameters() if p.requires_grad)


def load_variant(variant: str) -> None:
    """Import what `variant` needs now: a missing library is one error before any work is done,
    and torchao's state classes must be known before a checkpoint holding them is loaded."""
    requires = VARIANTS[variant].requires
    if requires:
        resolve(requires)(variant)


def optimizer_spec(model: nn.Module, config) -> tuple[type, list[dict], dict]:
    """(optimizer class, parameter groups, keyword arguments) for `config.optimizer_variant`,
    from the `spec` function its registry entry names (variants.py)."""
    variant = VARIANTS.get(config.optimizer_variant)
    if variant is None:
        raise ValueError(f"optimizer_variant={config.optimizer_variant!r} is not a known variant")
    return resolve(variant.spec)(model, config)


def build_optimizer(model: nn.Module, config, zero: bool = False) -> torch.optim.Optimizer:
    """The optimizer named by `config.optimizer_variant`, driven by the trainer's lr schedule.

    `zero=True` (inside a process group) shards its state across ranks with
    ZeroRedundancyOptimizer: each rank keeps the state of its share of the parameters.
    With `config.optimizer_in_backward` it steps each parameter inside the backward pass
    (in_backward.py); the config has refused the combinations that cannot. Under FSDP a
    whole-matrix variant steps each parameter whole on an owner rank (owner.py).
    """
    cls, groups, kwargs = optimizer_spec(model, config)
    if getattr(config, "fsdp", False) and VARIANTS[config.optimizer_variant].fsdp_step == "owner":
        from .owner import OwnerStep
        return OwnerStep(model, cls, groups, kwargs)
    if zero:
        from torch.distributed.optim import ZeroRedundancyOptimizer
        return ZeroRedundancyOptimizer(groups, optimizer_class=cls, **kwargs)
    optimizer = cls(groups, **kwargs)
    if getattr(config, "optimizer_in_backward", False):
        return StepInBackward(optimizer, lambda group: cls([group], **kwargs))
    return optimizer
