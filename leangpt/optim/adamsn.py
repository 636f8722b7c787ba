"""AdamSN: Adam with subset-norm step sizes (Nguyen et al., ICML 2025).

For a 2-D parameter of shape (n, m) the second moment keeps one entry per index of the larger
dimension, accumulating the *sum* of squared gradients over the smaller one:

    v <- beta2 * v + (1 - beta2) * sum_over_smaller_dim(g * g)      # (n, 1) if n >= m else (1, m)

so the state is nm + max(n, m) instead of Adam's 2nm (max(n, m) alone when beta1 = 0, which keeps
no first moment: RMSProp with subset norms). The step is torch.optim.AdamW's, with v broadcast:

    p <- p * (1 - lr * wd);  m <- beta1 * m + (1 - beta1) * g
    p <- p - lr * (m / bc1) / (sqrt(v / bc2) + eps),   bc1 = 1 - beta1^t, bc2 = 1 - beta2^t

Every other parameter (1-D, >2-D), and every parameter of a group with subset_norm=False, follows
AdamW exactly, so AdamSN with subset norms off *is* AdamW. The official code differs in two details:
it adds eps before applying the bias correction and applies weight decay after the update.
Because v sums (not averages) over the subset, steps are smaller than Adam's at the same lr:
the tuned learning rate is larger (the authors suggest ~10x Adam's).

On FSDP2's shards (rows split across ranks, shards.py) a tall matrix's sums run along its columns,
which every rank holds whole: they stay local, and v is sharded as the matrix is. A wide matrix's
sums run down its rows: each rank's partial sums are added across ranks, and v is replicated.
"""

from __future__ import annotations

import math

import torch

from ._common import VectorizedOptimizer, check_betas, check_nonnegative
from .shards import local, shard_group, sum_over_rows, zeros_like_rows


def subset_dim(shape: torch.Size) -> int:
    """The dimension summed over: the smaller one (dim 1 when the matrix is tall or square)."""
    return 1 if shape[0] >= shape[1] else 0


class AdamSN(VectorizedOptimizer):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, subset_norm: bool = True):
        check_nonnegative("lr", lr)
        check_betas(betas)
        check_nonnegative("eps", eps)
        check_nonnegative("weight_decay", weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, subset_norm=subset_norm)
        super().__init__(params, defaults)

    def _init_state(self, p: torch.Tensor, group: dict) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = 0
            if group["betas"][0] > 0:
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["subset_norm"] and p.dim() == 2:
                tall = subset_dim(p.shape) == 1
                state["exp_avg_sq"] = zeros_like_rows(p, p.shape[0] if tall else None, None if tall else p.shape[1])
            else:
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _update(self, group, params, states) -> None:
        shards = shard_group(params)
        shapes = [p.shape for p in params]  # whole shapes: a shard's would pick the wrong dimension
        grads = [local(p.grad) for p in params]
        beta1, beta2 = group["betas"]
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        for state in states:
            state["step"] += 1
        exp_avg_sqs = [local(s["exp_avg_sq"]) for s in states]
        params = [local(p) for p in params]

        if wd != 0:
            torch._foreach_mul_(params, 1 - lr * wd)

        subset = [i for i, s in enumerate(states) if s["exp_avg_sq"].shape != shapes[i]]
        full = [i for i in range(len(params)) if i not in set(subset)]
        if full:
            v_full = [exp_avg_sqs[i] for i in full]
            g_full = [grads[i] for i in full]
            torch._foreach_mul_(v_full, beta2)
            torch._foreach_addcmul_(v_full, g_full, g_full, value=1 - beta2)
        if subset:
            sums = [grads[i].square().sum(dim=subset_dim(shapes[i]), keepdim=True) for i in subset]
            wide = [k for k, i in enumerate(subset) if subset_dim(shapes[i]) == 0]  # sums over sharded rows
            for k, whole in zip(wide, sum_over_rows([sums[k] for k in wide], shards)):
                sums[k] = whole
            v_subset = [exp_avg_sqs[i] for i in subset]
            torch._foreach_mul_(v_subset, beta2)
            torch._foreach_add_(v_subset, sums, alpha=1 - beta2)

        steps = [s["step"] for s in states]
        bc2_sqrt = [math.sqrt(1 - beta2 ** t) for t in steps]
        denoms = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denoms, bc2_sqrt)
        torch._foreach_add_(denoms, eps)
        if beta1 > 0:
            exp_avgs = [local(s["exp_avg"]) for s in states]
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
            step_sizes = [-lr / (1 - beta1 ** t) for t in steps]
            torch._foreach_addcdiv_(params, exp_avgs, denoms, step_sizes)
        else:
            torch._foreach_addcdiv_(params, grads, denoms, [-lr] * len(params))


def spec(model, config):
    from .groups import param_groups, subset_norm_names
    groups = param_groups(model, config.weight_decay, subset_norm_names(model, config.adamsn_params),
                          config.adamsn_dense_lr_ratio)
    return AdamSN, groups, dict(lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.eps)
