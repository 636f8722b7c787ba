"""Optimizers: torch's Adam/AdamW, leangpt's AdamSN, AdamSNSM and Adafactor, and the wider field.

Written here: AdamSN, AdamSNSM (the methods this project studies) and Adafactor (torch's own
differs from the paper's factored update, see adafactor.py). Glued from maintained libraries:
Muon and Adam/AdamW (torch), Lion, Adam-mini, CAME, SM3, GaLore, APOLLO (pytorch-optimizer, the
`optimizers` extra), AdamW8bit (torchao). `optimizer_spec` is the one place a variant is defined.
"""

from __future__ import annotations

import sys

import torch
import torch.nn as nn

from . import field
from .adafactor import Adafactor
from .adamsn import AdamSN
from .adamsnsm import AdamSNSM
from .muon import MuonWithAdamW, require_muon

__all__ = ["AdamSN", "AdamSNSM", "Adafactor", "MuonWithAdamW", "build_optimizer", "state_bytes", "state_tensors",
           "adamw_state_bytes", "param_groups", "load_variant"]


# variants whose step is torch.compile'd: a compiled graph cannot run under the memory tracker's
# TorchDispatchMode, so their steps are not tracked
COMPILED_STEP_VARIANTS = ("adamw8bit",)


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


def load_variant(variant: str) -> None:
    """Import what `variant` needs now: a missing library is one error before any work is done,
    and torchao's state classes must be known before a checkpoint holding them is loaded."""
    if variant == "muon":
        require_muon()
    elif variant == "adamw8bit":
        field.adamw8bit_class()
    elif variant in ("lion", "adam_mini", "came", "sm3", "galore", "apollo"):
        field.pytorch_optimizer(variant)


def _with_keys(groups: list[dict], names: set[str], model: nn.Module, keys: dict) -> list[dict]:
    """`groups` with the parameters named in `names` moved into their own group(s) carrying `keys`."""
    wanted = {id(p) for n, p in model.named_parameters() if n in names}
    out = []
    for group in groups:
        inside = [p for p in group["params"] if id(p) in wanted]
        outside = [p for p in group["params"] if id(p) not in wanted]
        if inside:
            out.append({**group, "params": inside, **keys})
        if outside:
            out.append({**group, "params": outside})
    return out


def _adam_mini_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """One named group per parameter, the c_attn weights named as per-head blocks (LeanAdamMini)."""
    head_block = model.config.head_dim * model.config.n_embd
    groups = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        group = {"params": [p], "name": name, "weight_decay": weight_decay if p.dim() >= 2 else 0.0}
        if name.endswith("attn.c_attn.weight"):
            group.update(name=name.replace("c_attn.weight", "c_attn.q_proj.weight"), parameter_per_head=head_block)
        groups.append(group)
    return groups


def optimizer_spec(model: nn.Module, config) -> tuple[type, list[dict], dict]:
    """(optimizer class, parameter groups, keyword arguments) for `config.optimizer_variant`."""
    variant, lr = config.optimizer_variant, config.learning_rate
    betas = (config.beta1, config.beta2)
    wd = config.weight_decay
    hidden = _subset_norm_names(model, "linear")  # hidden nn.Linear weights: the low-rank / Muon methods' target
    foreach = True  # pytorch-optimizer batches its updates with torch._foreach_* only when asked to on CPU
    if variant == "adamsnsm":
        groups = param_groups(model, wd, hidden, 1.0)
        for group in groups:
            if group.get("subset_norm"):
                group.update(rank=config.adamsnsm_rank, update_proj_gap=config.adamsnsm_update_proj_gap)
        return AdamSNSM, groups, dict(lr=lr, betas=betas, eps=config.eps)
    if variant == "muon":
        groups = _with_keys(param_groups(model, wd), hidden, model, {"muon": True})
        return MuonWithAdamW, groups, dict(
            lr=lr, weight_decay=wd, betas=betas, eps=config.eps, momentum=config.muon_momentum,
            nesterov=config.muon_nesterov, ns_steps=config.muon_ns_steps, adjust_lr_fn=config.muon_adjust_lr_fn)
    if variant == "lion":
        return (field.pytorch_optimizer(variant).Lion, param_groups(model, wd),
                dict(lr=lr, betas=(config.lion_beta1, config.lion_beta2), weight_decay=wd, foreach=foreach))
    if variant == "came":
        return (field.pytorch_optimizer(variant).CAME, param_groups(model, wd),
                dict(lr=lr, betas=(config.beta1, config.beta2, config.came_beta3), weight_decay=wd,
                     clip_threshold=config.came_clip_threshold, foreach=foreach))
    if variant == "sm3":  # SM3 has no weight decay
        return (field.pytorch_optimizer(variant).SM3, param_groups(model, 0.0),
                dict(lr=lr, momentum=config.sm3_momentum, beta=config.sm3_beta, foreach=foreach))
    if variant == "galore":
        groups = _with_keys(param_groups(model, wd), hidden, model, dict(
            rank=config.galore_rank, update_proj_gap=config.galore_update_proj_gap, scale=config.galore_scale,
            projection_type=config.galore_proj_type))
        return field.galore_class(), groups, dict(lr=lr, betas=betas, eps=config.eps, weight_decay=wd, foreach=foreach)
    if variant == "apollo":
        groups = _with_keys(param_groups(model, wd), hidden, model, dict(
            rank=config.apollo_rank, update_proj_gap=config.apollo_update_proj_gap, scale=config.apollo_scale,
            projection_type="std"))
        return field.apollo_class(), groups, dict(
            lr=lr, betas=betas, eps=config.eps, weight_decay=wd, scale_type=config.apollo_scale_type,
            projection_seed=config.seed, foreach=foreach)
    if variant == "adam_mini":
        return field.adam_mini_class(), _adam_mini_groups(model, wd), dict(
            lr=lr, betas=betas, eps=config.eps, weight_decay=wd, num_embeds=model.config.n_embd,
            num_heads=model.config.n_head, num_query_groups=model.config.n_kv_head)
    if variant == "adamw8bit":
        return field.adamw8bit_class(), param_groups(model, wd), dict(
            lr=lr, betas=betas, eps=config.eps, weight_decay=wd, block_size=config.adamw8bit_block_size)
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
    raise ValueError(f"optimizer_variant={variant!r} is not a known variant")


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
