"""Whole-matrix optimizers under FSDP: each parameter is stepped whole, on one owner rank.

SVD projections (GaLore, AdamSNSM), factored or blockwise statistics computed by a library on
whatever tensor it is handed (CAME, SM3, Adam-mini, torchao's 8-bit blocks) are right only on the
whole matrix. `OwnerStep` keeps, on each rank, whole copies of the parameters it owns (ZeRO's
greedy partition, largest first, so ranks own about 1/N of the elements each) and an ordinary
optimizer of the variant over them, whose state is therefore also whole and on one rank. A step
all-gathers each gradient (the owner keeps it), the owners step, and each owner broadcasts its
updated parameters, of which every rank copies its rows back into its FSDP shard. The update is
the one-process update of the same whole tensors, so it is as exact as one process; it costs one
extra copy of 1/N of the weights per rank, and a gather and a broadcast of every weight per step.
"""

from __future__ import annotations

import torch

from . import shards
from .shards import local, row_offset, shard_group


def owner_partition(params: list[torch.Tensor], world_size: int, groups: list[list[torch.Tensor]]) -> list[int]:
    """Each parameter's owner: per group, largest first, to the rank holding the fewest elements so
    far (the lowest rank on a tie): ZeroRedundancyOptimizer's rule."""
    sizes, owner = [0] * world_size, {}
    for group in groups:
        for p in sorted(group, key=lambda t: t.numel(), reverse=True):
            rank = sizes.index(min(sizes))
            owner[id(p)] = rank
            sizes[rank] += p.numel()
    return [owner[id(p)] for p in params]


class OwnerStep:
    """The optimizer an FSDP run of a whole-matrix variant steps (see the module docstring).
    `param_groups` are the variant's groups over the sharded parameters: the trainer sets their
    learning rate, and each step copies their settings into the owners' optimizers."""

    def __init__(self, model: torch.nn.Module, cls: type, groups: list[dict], kwargs: dict):
        self.names = {id(p): n for n, p in model.named_parameters()}
        self.param_groups = groups
        self.params = [p for g in groups for p in g["params"]]
        self.group = shard_group(self.params)
        dist = torch.distributed
        self.rank = dist.get_rank(self.group)
        self.owners = owner_partition(self.params, dist.get_world_size(self.group), [g["params"] for g in groups])
        self.wholes: dict[int, torch.Tensor] = {}
        self.sync_from_shards()
        inner_groups = [{**g, "params": [self.wholes[id(p)] for p in g["params"] if id(p) in self.wholes]}
                        for g in groups]
        self.inner = cls(inner_groups, **kwargs)
        for group, inner in zip(groups, self.inner.param_groups):  # the defaults the optimizer filled in
            group.update({k: v for k, v in inner.items() if k not in group and k != "params"})

    @property
    def state(self):
        return self.inner.state

    def whole_of(self, p: torch.Tensor) -> torch.Tensor | None:
        return self.wholes.get(id(p))

    @torch.no_grad()
    def sync_from_shards(self) -> None:
        """The owners' whole copies made from the shards (at the start, and after a checkpoint
        loaded the shards): one all-gather per parameter."""
        for p, owner in zip(self.params, self.owners):
            whole = p.full_tensor()
            if owner == self.rank:
                if id(p) in self.wholes:
                    self.wholes[id(p)].copy_(whole)
                else:
                    self.wholes[id(p)] = whole.detach().clone().requires_grad_(True)
            del whole

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("OwnerStep takes no closure")
        for p, owner in zip(self.params, self.owners):
            if p.grad is None:
                continue
            grad = shards.gather_rows(local(p.grad), p)
            if owner == self.rank:
                self.wholes[id(p)].grad = grad
            del grad
        for group, inner in zip(self.param_groups, self.inner.param_groups):
            for key, value in group.items():
                if key in ("params", "step"):  # "step": a counter the inner optimizer keeps per group itself
                    continue
                if torch.is_tensor(inner.get(key)) and not torch.is_tensor(value):
                    inner[key].fill_(value)  # torchao keeps lr as a tensor, so its compiled step never recompiles
                else:
                    inner[key] = value
        self.inner.step()
        for p, owner in zip(self.params, self.owners):
            whole = self.wholes[id(p)].detach() if owner == self.rank else \
                torch.empty(p.shape, dtype=p.dtype, device=local(p).device)
            torch.distributed.broadcast(whole, src=torch.distributed.get_global_rank(self.group, owner),
                                        group=self.group)
            block = local(p)
            block.copy_(whole.narrow(0, row_offset(p), block.shape[0]))
            del whole

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None
        self.inner.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ checkpoints
    def named_state(self) -> dict:
        """This rank's state keyed by parameter name (the layout a plain optimizer's
        torch.distributed.checkpoint state dict has), and each group's step counter."""
        return named_state(self.inner, {id(self.wholes[i]): self.names[i] for i in self.wholes})

    def load_named_state(self, loaded: dict) -> None:
        load_named_state(self.inner, {id(self.wholes[i]): self.names[i] for i in self.wholes}, loaded)


def named_state(optimizer, names: dict[int, str]) -> dict:
    state = {names[id(p)]: dict(optimizer.state[p]) for g in optimizer.param_groups for p in g["params"]
             if p in optimizer.state}
    return {"state": state, "group_steps": [g.get("step", 0) for g in optimizer.param_groups]}


def load_named_state(optimizer, names: dict[int, str], loaded: dict) -> None:
    for g, step in zip(optimizer.param_groups, loaded["group_steps"]):
        if "step" in g or step:
            g["step"] = step
    for g in optimizer.param_groups:
        for p in g["params"]:
            if names[id(p)] in loaded["state"]:
                optimizer.state[p] = dict(loaded["state"][names[id(p)]])
