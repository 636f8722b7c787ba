"""AdamSNSM: AdamSN with subspace momentum (Nguyen et al., ICML 2025). Our own implementation.

For a 2-D weight W of shape (n, m) in a group with `rank` r, the first moment lives in an
r-dimensional subspace of the gradient G, found by an SVD of G and refreshed every
`update_proj_gap` steps (at steps 1, gap, 2*gap, ...):

    n >= m:  P = V[:, :r]^T (r, m),  low(G) = G P^T  (n, r),  back(X) = X P
    n <  m:  P = U[:, :r]   (n, r),  low(G) = P^T G  (r, m),  back(X) = P X

    at a refresh: m <- 0, s <- t                                   # s: the step m restarted at
    m <- beta1 * m + (1 - beta1) * low(G)                          # r * max(n, m) floats
    v <- beta2 * v + (1 - beta2) * sum_over_smaller_dim(G * G)     # AdamSN's subset norm
    u  = back(m) / (1 - beta1^(t - s + 1))  +  (G - back(low(G)))  # momentum in the subspace,
                                                                   # plain gradient outside it
    W <- W * (1 - lr * wd)
    W <- W - lr * u / (sqrt(v / (1 - beta2^t)) + eps)

so a weight keeps r * max(n, m) + r * min(n, m) + max(n, m) floats instead of Adam's 2nm.
Every other parameter follows AdamSN (and so AdamW for what has no subset norm).

Where the official code (timmytonga/sn-sm, GenericOptim + subspace_momentum.py) differs:
  - it fetches the momentum tensor before resetting it, so at a refresh step the *old* momentum
    (coordinates in the old basis, projected back with the new one) is updated and used, and the
    zeroed tensor starts one step later; here the reset happens before the update;
  - it bias-corrects the whole update by 1 - beta1^t with the global step; here only the momentum
    part is corrected, by the steps since its restart, so that step 1 after a refresh is not damped
    (the orthogonal part is a raw gradient and needs no correction);
  - eps is added before the second-moment bias correction and weight decay after the update
    (as in its AdamSN), where we follow torch.optim.AdamW as adamsn.py does.
"""

from __future__ import annotations

import math

import torch

from .adamsn import AdamSN, subset_dim


def _projection(grad: torch.Tensor, rank: int) -> torch.Tensor:
    """The orthonormal basis of the gradient's top-`rank` singular directions on its smaller side."""
    exact = grad.dtype in (torch.float32, torch.float64)  # linalg.svd takes no half precision
    u, _, vh = torch.linalg.svd(grad if exact else grad.float(), full_matrices=False)
    basis = vh[:rank] if grad.shape[0] >= grad.shape[1] else u[:, :rank]
    return basis.to(grad.dtype).contiguous()


def project(grad: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return grad @ basis.T if grad.shape[0] >= grad.shape[1] else basis.T @ grad


def project_back(low: torch.Tensor, basis: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return low @ basis if shape[0] >= shape[1] else basis @ low


class AdamSNSM(AdamSN):
    """AdamSN whose groups with a `rank` key keep subspace momentum on their 2-D parameters."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, subset_norm: bool = True):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, subset_norm=subset_norm)
        for group in self.param_groups:
            if "rank" in group:
                rank, gap = group["rank"], group.get("update_proj_gap")
                if not (isinstance(rank, int) and rank >= 1 and isinstance(gap, int) and gap >= 1):
                    raise ValueError(f"invalid rank={rank!r} / update_proj_gap={gap!r}: both must be ints >= 1")
                if group["betas"][0] == 0:
                    raise ValueError("subspace momentum needs beta1 > 0 (beta1 = 0 keeps no momentum at all)")

    @staticmethod
    def _is_subspace(group: dict, p: torch.Tensor) -> bool:
        return "rank" in group and p.dim() == 2

    def _init_state(self, p: torch.Tensor, group: dict) -> dict:
        if not self._is_subspace(group, p):
            return super()._init_state(p, group)
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["momentum_start"] = 1
            v_shape = (p.shape[0], 1) if subset_dim(p.shape) == 1 else (1, p.shape[1])
            state["exp_avg_sq"] = torch.zeros(v_shape, dtype=p.dtype, device=p.device)
        return state

    def _update(self, group, params, states) -> None:
        plain = [i for i, p in enumerate(params) if not self._is_subspace(group, p)]
        if plain:
            super()._update(group, [params[i] for i in plain], [states[i] for i in plain])
        for p, state in zip(params, states):
            if self._is_subspace(group, p):
                self._subspace_step(group, p, state)

    def _subspace_step(self, group: dict, p: torch.Tensor, state: dict) -> None:
        grad = p.grad
        beta1, beta2 = group["betas"]
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        state["step"] += 1
        t = state["step"]
        if t == 1 or t % group["update_proj_gap"] == 0:
            state["projection"] = _projection(grad, min(group["rank"], *p.shape))
            state["exp_avg"] = torch.zeros_like(project(grad, state["projection"]))
            state["momentum_start"] = t
        basis, exp_avg, exp_avg_sq = state["projection"], state["exp_avg"], state["exp_avg_sq"]

        low = project(grad, basis)
        exp_avg.lerp_(low, 1 - beta1)
        exp_avg_sq.mul_(beta2).add_(grad.square().sum(dim=subset_dim(p.shape), keepdim=True), alpha=1 - beta2)

        momentum_steps = t - state["momentum_start"] + 1
        update = project_back(exp_avg, basis, p.shape).div_(1 - beta1 ** momentum_steps)
        update.add_(grad).sub_(project_back(low, basis, p.shape))
        denom = exp_avg_sq.sqrt().div_(math.sqrt(1 - beta2 ** t)).add_(eps)
        if wd != 0:
            p.mul_(1 - lr * wd)
        p.addcdiv_(update, denom, value=-lr)


def spec(model, config):
    from .groups import hidden_linear_names, param_groups
    groups = param_groups(model, config.weight_decay, hidden_linear_names(model), 1.0)
    for group in groups:
        if group.get("subset_norm"):
            group.update(rank=config.adamsnsm_rank, update_proj_gap=config.adamsnsm_update_proj_gap)
    return AdamSNSM, groups, dict(lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.eps)
