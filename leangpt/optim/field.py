"""Glue for the memory-reduced optimizers that maintained libraries implement.

pytorch-optimizer (the `leangpt[optimizers]` extra) gives Lion, Adam-mini, CAME, SM3, GaLore and
APOLLO; torchao gives AdamW8bit. Each is imported only when its variant is asked for. The glue
below does three things the libraries leave to the caller:

  - state_dict: GaLore and APOLLO keep a projector *object* in their state; it is stored as plain
    tensors and numbers, so checkpoints still load with torch.load(weights_only=True);
  - APOLLO's random projections are drawn from a generator seeded by (seed, step), not from the
    global one: every data-parallel rank draws the same matrix, and dropout's stream is untouched;
  - Adam-mini is told leangpt's parameter layout (see LeanAdamMini).
"""

from __future__ import annotations

import importlib

import torch
import torch.nn as nn

from ..errors import MissingDependency
from .groups import hidden_linear_names, param_groups, with_keys

EXTRA_HINT = "pip install 'leangpt[optimizers]'"
# pytorch-optimizer batches its updates with torch._foreach_* only when asked to on CPU
FOREACH = True


def import_optional(module: str, variant: str, install: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(f"optimizer_variant={variant} needs the {module.split('.')[0]} package: "
                                f"{install}") from None


def pytorch_optimizer(variant: str):
    return import_optional("pytorch_optimizer", variant, EXTRA_HINT)


def require_pytorch_optimizer(variant: str) -> None:
    pytorch_optimizer(variant)


def adamw8bit_class(variant: str = "adamw8bit"):
    """torchao's AdamW8bit, imported quietly (torchao logs about CUDA kernels it cannot load on CPU)."""
    import logging
    import warnings
    quiet = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree", "root")]
    levels = [log.level for log in quiet]
    for log in quiet:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = import_optional("torchao.optim", "adamw8bit", "pip install torchao  (or 'leangpt[optimizers]')")
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)
    return module.AdamW8bit


# ------------------------------------------------------------------ projector state as plain data
_PROJECTOR_FIELDS = ("rank", "update_proj_gap", "scale", "projection_type", "last_svd_step")


def _projector_to_dict(projector) -> dict:
    out = {"__projector__": 1, **{k: getattr(projector, k) for k in _PROJECTOR_FIELDS}}
    ortho = projector.ortho_matrix
    if isinstance(ortho, tuple):
        out["ortho_left"], out["ortho_right"] = ortho
    elif ortho is not None:
        out["ortho"] = ortho
    return out


def _projector_from_dict(data: dict, projector_cls):
    projector = projector_cls(rank=data["rank"], update_proj_gap=data["update_proj_gap"], scale=data["scale"],
                              projection_type=data["projection_type"])
    projector.last_svd_step = data["last_svd_step"]
    if "ortho_left" in data:
        projector.ortho_matrix = (data["ortho_left"], data["ortho_right"])
    else:
        projector.ortho_matrix = data.get("ortho")
    return projector


def with_plain_projectors(base: type) -> type:
    """`base` (GaLore or APOLLO) whose state_dict stores its projectors as tensors and numbers."""
    from pytorch_optimizer.optimizer.utils.galore import GaLoreProjector

    class PlainProjectors(base):
        def state_dict(self):
            saved = super().state_dict()  # its per-parameter dicts are the live ones: copy, never edit
            saved["state"] = {key: {**state, "projector": _projector_to_dict(state["projector"])}
                              if "projector" in state else state for key, state in saved["state"].items()}
            return saved

        def load_state_dict(self, state_dict):
            super().load_state_dict(state_dict)
            for state in self.state.values():
                if isinstance(state.get("projector"), dict):
                    state["projector"] = _projector_from_dict(state["projector"], GaLoreProjector)

    PlainProjectors.__name__ = PlainProjectors.__qualname__ = base.__name__
    return PlainProjectors


def galore_class():
    return with_plain_projectors(pytorch_optimizer("galore").GaLore)


def apollo_class():
    base = with_plain_projectors(pytorch_optimizer("apollo").APOLLO)

    class SeededAPOLLO(base):
        """APOLLO with its random projections drawn from torch.manual_seed(seed + step) in a forked
        generator: identical on every rank, independent of (and invisible to) dropout's stream."""

        def __init__(self, params, projection_seed: int = 0, **kwargs):
            super().__init__(params, **kwargs)
            self.projection_seed = projection_seed

        @torch.no_grad()
        def step(self, closure=None):
            step = max((g.get("step", 0) for g in self.param_groups), default=0)
            devices = sorted({p.device.index or 0 for g in self.param_groups for p in g["params"] if p.is_cuda})
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.projection_seed + step)
                return super().step(closure)

    SeededAPOLLO.__name__ = SeededAPOLLO.__qualname__ = "APOLLO"
    return SeededAPOLLO


def adam_mini_class():
    base = pytorch_optimizer("adam_mini").AdamMini

    class LeanAdamMini(base):
        """pytorch-optimizer's Adam-mini on groups that leangpt builds (one per parameter, named).

        Adam-mini picks each parameter's block structure by name. leangpt's fused c_attn weight
        stacks whole heads, queries first then keys then values ((n_head + 2 n_kv_head) * head_dim
        rows), so it is named as a "q_proj.weight" with one block per head_dim x n_embd: one
        second-moment scalar per query, key and value head, which is what Adam-mini asks for with
        GQA (the library's fused-qkv path assumes heads interleaved per group, which this is not).
        The token embedding (tied to the output layer) is named "wte": full Adam. Everything else
        gets one scalar per tensor. Weight decay is set per group by nanoGPT's rule (none on 1-D
        tensors), not by the library's test for "norm" in the name.
        """

        def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                     num_embeds: int = 1, num_heads: int = 1, num_query_groups: int | None = None):
            self._leangpt_groups = list(params)
            super().__init__(model=None, lr=lr, betas=betas, weight_decay=weight_decay, num_embeds=num_embeds,
                             num_heads=num_heads, num_query_groups=num_query_groups, eps=eps, foreach=False)

        def get_optimizer_groups(self, weight_decay: float):
            return self._leangpt_groups

    LeanAdamMini.__name__ = LeanAdamMini.__qualname__ = "AdamMini"
    return LeanAdamMini


# ------------------------------------------------------------------ each variant's groups and settings
def lion_spec(model, config):
    return pytorch_optimizer("lion").Lion, param_groups(model, config.weight_decay), dict(
        lr=config.learning_rate, betas=(config.lion_beta1, config.lion_beta2), weight_decay=config.weight_decay,
        foreach=FOREACH)


def came_spec(model, config):
    return pytorch_optimizer("came").CAME, param_groups(model, config.weight_decay), dict(
        lr=config.learning_rate, betas=(config.beta1, config.beta2, config.came_beta3),
        weight_decay=config.weight_decay, clip_threshold=config.came_clip_threshold, foreach=FOREACH)


def sm3_spec(model, config):  # SM3 has no weight decay
    return pytorch_optimizer("sm3").SM3, param_groups(model, 0.0), dict(
        lr=config.learning_rate, momentum=config.sm3_momentum, beta=config.sm3_beta, foreach=FOREACH)


def galore_spec(model, config):
    groups = with_keys(param_groups(model, config.weight_decay), hidden_linear_names(model), model, dict(
        rank=config.galore_rank, update_proj_gap=config.galore_update_proj_gap, scale=config.galore_scale,
        projection_type=config.galore_proj_type))
    return galore_class(), groups, dict(lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.eps,
                                        weight_decay=config.weight_decay, foreach=FOREACH)


def apollo_spec(model, config):
    groups = with_keys(param_groups(model, config.weight_decay), hidden_linear_names(model), model, dict(
        rank=config.apollo_rank, update_proj_gap=config.apollo_update_proj_gap, scale=config.apollo_scale,
        projection_type="std"))
    return apollo_class(), groups, dict(
        lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.eps,
        weight_decay=config.weight_decay, scale_type=config.apollo_scale_type, projection_seed=config.seed,
        foreach=FOREACH)


def adam_mini_groups(model: nn.Module, weight_decay: float) -> list[dict]:
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


def adam_mini_spec(model, config):
    return adam_mini_class(), adam_mini_groups(model, config.weight_decay), dict(
        lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.eps,
        weight_decay=config.weight_decay, num_embeds=model.config.n_embd, num_heads=model.config.n_head,
        num_query_groups=model.config.n_kv_head)


def adamw8bit_spec(model, config):
    return adamw8bit_class(), param_groups(model, config.weight_decay), dict(
        lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.eps,
        weight_decay=config.weight_decay, block_size=config.adamw8bit_block_size)
