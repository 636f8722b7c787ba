"""Muon for the hidden 2-D weights, AdamW for the rest, seen by the trainer as one optimizer.

The split is modded-nanogpt's and Moonlight's: Muon (torch.optim.Muon, torch >= 2.9) orthogonalizes
the momentum of every hidden nn.Linear weight; embeddings, the tied output layer, LayerNorm gains
and biases take AdamW steps. With adjust_lr_fn="match_rms_adamw" Muon scales its update to AdamW's
RMS, so one learning rate (and one schedule) serves both parts.

The two torch optimizers share this object's param_groups (each group says which one it belongs to
with `muon`) and its state, so state_dict / load_state_dict / ZeroRedundancyOptimizer see one
ordinary torch.optim.Optimizer.

On FSDP2's row shards torch's Muon cannot run (Newton-Schulz needs the whole matrix, and it fails
on DTensors), so `_sharded_muon_step` does its update itself: the momentum stays sharded and
elementwise, each matrix's update is all-gathered, orthogonalized by torch's own Newton-Schulz on
every rank (the same input gives the same output everywhere) and each rank keeps its rows.
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer

from ..errors import MissingDependency
from . import shards
from .shards import local, row_offset, shard_group


def require_muon(variant: str = "muon") -> type:
    muon = getattr(torch.optim, "Muon", None)
    if muon is None:
        raise MissingDependency(f"optimizer_variant=muon needs torch.optim.Muon, added in torch 2.9 "
                          f"(this is torch {torch.__version__})")
    return muon


class MuonWithAdamW(Optimizer):
    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.1, betas=(0.9, 0.95), eps: float = 1e-8,
                 momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
                 adjust_lr_fn: str = "match_rms_adamw", foreach: bool = True):
        muon_cls = require_muon()
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))
        muon_groups = [g for g in self.param_groups if g.get("muon")]
        adamw_groups = [g for g in self.param_groups if not g.get("muon")]
        # the inner constructors add their defaults (and check their arguments) on the shared dicts
        self._muon = muon_cls(muon_groups, lr=lr, weight_decay=weight_decay, momentum=momentum,
                              nesterov=nesterov, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn) if muon_groups else None
        self._adamw = torch.optim.AdamW(adamw_groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                        foreach=foreach) if adamw_groups else None
        # built after FSDP sharded the model (build_optimizer's rule), so this holds for the run
        self._sharded = shard_group([p for g in muon_groups for p in g["params"]]) is not None

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # load_state_dict replaces this object's groups and state: point the inner ones at them anew
        for inner, is_muon in ((self._muon, True), (self._adamw, False)):
            if inner is not None and is_muon and self._sharded:
                for group in self.param_groups:
                    if group.get("muon"):
                        self._sharded_muon_step(group)
            elif inner is not None:
                inner.param_groups = [g for g in self.param_groups if bool(g.get("muon")) == is_muon]
                inner.state = self.state
                inner.step()
        return loss

    def _sharded_muon_step(self, group: dict) -> None:
        """torch.optim.Muon's update (torch/optim/_muon.py: _single_tensor_muon) on row shards."""
        from torch.optim._muon import _adjust_lr, _zeropower_via_newtonschulz
        lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p.grad)  # a DTensor sharded as the weight
            grad, buf = local(p.grad), local(state["momentum_buffer"])
            buf.lerp_(grad, 1 - momentum)
            update = grad.lerp(buf, momentum) if group["nesterov"] else buf
            whole = _zeropower_via_newtonschulz(shards.gather_rows(update, p), group["ns_coefficients"], group["ns_steps"],
                                                group["eps"])
            mine = whole.narrow(0, row_offset(p), update.shape[0])
            weight = local(p)
            weight.mul_(1 - lr * wd)
            weight.add_(mine, alpha=-_adjust_lr(lr, group["adjust_lr_fn"], p.shape))


def spec(model, config):
    from .groups import hidden_linear_names, param_groups, with_keys
    groups = with_keys(param_groups(model, config.weight_decay), hidden_linear_names(model), model, {"muon": True})
    return MuonWithAdamW, groups, dict(
        lr=config.learning_rate, weight_decay=config.weight_decay, betas=(config.beta1, config.beta2),
        eps=config.eps, momentum=config.muon_momentum, nesterov=config.muon_nesterov,
        ns_steps=config.muon_ns_steps, adjust_lr_fn=config.muon_adjust_lr_fn)
