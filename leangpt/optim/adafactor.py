"""Adafactor (Shazeer & Stern, 2018): factored second moments, update clipping, relative steps.

For a parameter with >= 2 dims, the second moment of its last two dims is kept as row and
column means of g*g (n + m numbers per matrix instead of nm) and rebuilt as
V_hat = R C / mean(R); 1-D parameters keep a full second moment. With beta2_t = 1 - t^decay_rate:

    U = g / max(sqrt(V_hat), eps1)                # eps1 = float32's machine epsilon when None
    U <- U / max(1, RMS(U) / clip_threshold)
    rho_t = min(lr, 1/sqrt(t)) if relative_step else lr
    alpha_t = max(eps2, RMS(p)) * rho_t if scale_parameter else rho_t
    p <- p * (1 - lr * weight_decay);  p <- p - alpha_t * U

relative_step=False lets the trainer's warmup/cosine schedule set the step directly. beta1 adds a
first moment of the *clipped* update before the step size (m <- beta1 m + (1-beta1) U;
p <- p - alpha_t m); HF transformers and tensor2tensor average the already-scaled update instead.
State is float32 whatever the parameter dtype (torch's Adafactor keeps bf16 state and an eps1 of
2^-7 for bf16 parameters, which loses small updates). With beta1=None, relative_step=True and
scale_parameter=True this is torch.optim.Adafactor.

On FSDP2's shards (rows split across ranks, shards.py) row statistics stay local and sharded;
the column statistics, the mean of the row statistics, the clamp's minimum and the two RMS values
reduce over rows, so each is summed (or minimised) across ranks: one all-reduce apiece per group.
"""

from __future__ import annotations

import torch

from ._common import VectorizedOptimizer, check_nonnegative
from .shards import all_reduce, local, shard_group, sum_over_rows, zeros_like_rows


class Adafactor(VectorizedOptimizer):
    def __init__(self, params, lr: float = 1e-2, beta1: float | None = None, decay_rate: float = -0.8,
                 eps: tuple[float | None, float] = (None, 1e-3), clip_threshold: float = 1.0,
                 weight_decay: float = 0.0, relative_step: bool = True, scale_parameter: bool = True):
        check_nonnegative("lr", lr)
        if beta1 is not None and not (isinstance(beta1, (int, float)) and 0.0 <= beta1 < 1.0):
            raise ValueError(f"invalid beta1={beta1!r}: must be None or in [0, 1)")
        if not isinstance(decay_rate, (int, float)) or decay_rate >= 0:
            raise ValueError(f"invalid decay_rate={decay_rate!r}: must be < 0 (beta2_t = 1 - t^decay_rate)")
        if len(eps) != 2:
            raise ValueError(f"invalid eps={eps!r}: must be a pair (eps1 or None, eps2)")
        if eps[0] is not None:
            check_nonnegative("eps[0]", eps[0])
        check_nonnegative("eps[1]", eps[1])
        check_nonnegative("clip_threshold", clip_threshold)
        if clip_threshold == 0:
            raise ValueError("invalid clip_threshold=0: must be > 0")
        check_nonnegative("weight_decay", weight_decay)
        defaults = dict(lr=lr, beta1=beta1, decay_rate=decay_rate, eps=tuple(eps), clip_threshold=clip_threshold,
                        weight_decay=weight_decay, relative_step=relative_step, scale_parameter=scale_parameter)
        super().__init__(params, defaults)

    def _init_state(self, p: torch.Tensor, group: dict) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = 0
            if p.dim() == 2:
                state["row_var"] = zeros_like_rows(p, p.shape[0], None, torch.float32)
                state["col_var"] = zeros_like_rows(p, None, p.shape[1], torch.float32)
            elif p.dim() > 2:  # a stack of matrices (none in leangpt's GPT): factored over the last two dims
                if shard_group([p]) is not None:
                    raise ValueError("Adafactor on FSDP shards factors 2-D parameters only")
                state["row_var"] = torch.zeros(p.shape[:-1] + (1,), dtype=torch.float32, device=p.device)
                state["col_var"] = torch.zeros(p.shape[:-2] + (1, p.shape[-1]), dtype=torch.float32, device=p.device)
            else:
                state["variance"] = torch.zeros_like(p, dtype=torch.float32)
            if group["beta1"] is not None:
                state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
        return state

    def _update(self, group, params, states) -> None:
        lr, wd, beta1 = group["lr"], group["weight_decay"], group["beta1"]
        eps1, eps2 = group["eps"]
        for state in states:
            state["step"] += 1
        steps = torch.tensor([s["step"] for s in states], dtype=torch.float32)
        shards = shard_group(params)
        shapes = [p.shape for p in params]  # whole shapes: the means and RMS divide by them
        grads = [local(p.grad).float() for p in params]
        params = [local(p) for p in params]
        params32 = [p if p.dtype == torch.float32 else p.float() for p in params]

        # the clamp floor: eps1 squared, since the clamp acts before the square root
        floor = (torch.finfo(torch.float32).eps if eps1 is None else eps1) ** 2
        factored = [i for i, g in enumerate(grads) if g.dim() >= 2]
        squares = [g * g for g in grads]  # each reduced twice below: cheaper than two strided norms of g
        # column sums run down the rows, which shards split: summed across ranks, like the row sums'
        # total that the row statistics are scaled by
        col_sums = sum_over_rows([squares[i].sum(dim=-2, keepdim=True) for i in factored], shards)
        row_sums = {i: squares[i].sum(dim=-1, keepdim=True) for i in factored}
        factors, lowest = {}, []
        for k, i in enumerate(factored):
            state, one_minus_beta2 = states[i], states[i]["step"] ** group["decay_rate"]
            row_var, col_var = local(state["row_var"]), local(state["col_var"])
            row_var.lerp_(row_sums[i].div_(shapes[i][-1]), one_minus_beta2)
            col_var.lerp_(col_sums[k].div_(shapes[i][-2]), one_minus_beta2)
        row_totals = sum_over_rows([local(states[i]["row_var"]).sum(dim=-2, keepdim=True) for i in factored], shards)
        for k, i in enumerate(factored):
            row_var, col_var = local(states[i]["row_var"]), local(states[i]["col_var"])
            row_mean = row_totals[k].div_(shapes[i][-2]).clamp_(min=floor ** 0.5)
            scaled_rows = row_var / row_mean
            factors[i] = (scaled_rows, col_var)
            # an empty shard (fewer rows than ranks) has no minimum: it must not win the all-reduce
            low = scaled_rows.amin() if scaled_rows.numel() else torch.tensor(float("inf"), device=row_var.device)
            lowest.append(low * col_var.amin())
        for i, g in enumerate(grads):
            if i not in factors:
                one_minus_beta2 = states[i]["step"] ** group["decay_rate"]
                local(states[i]["variance"]).lerp_(squares[i], one_minus_beta2)
                factors[i] = (local(states[i]["variance"]), None)
        if lowest:
            lowest = all_reduce(torch.stack(lowest), shards, torch.distributed.ReduceOp.MIN if shards else None)
        clamp_needed = iter((lowest < floor).tolist() if len(lowest) else [])

        updates = []
        for i, g in enumerate(grads):
            rows, cols = factors[i]
            if cols is None:
                updates.append(rows.clamp(min=floor).rsqrt_().mul_(g))
            elif next(clamp_needed):  # V_hat = R C / mean(R) has entries below eps1^2: clamp them
                updates.append((rows * cols).clamp_(min=floor).rsqrt_().mul_(g))
            else:  # no entry needs the clamp: 1/sqrt(V_hat) factors too, so V_hat is never built
                updates.append((g * rows.rsqrt()).mul_(cols.rsqrt()))

        # every per-parameter scalar at once: one host sync per group instead of two per parameter
        numels = torch.tensor([s.numel() for s in shapes], dtype=torch.float32)
        update_rms = _whole_norms(updates, shards) / numels.sqrt()
        clip = torch.clamp(update_rms / group["clip_threshold"], min=1.0)
        rho = torch.clamp(1.0 / steps.sqrt(), max=lr) if group["relative_step"] else torch.full_like(steps, lr)
        if group["scale_parameter"]:
            param_rms = _whole_norms(params32, shards) / numels.sqrt()
            alpha = torch.clamp(param_rms, min=eps2) * rho
        else:
            alpha = rho

        if wd != 0:
            torch._foreach_mul_(params32, 1 - lr * wd)
        if beta1 is None:
            torch._foreach_mul_(updates, (-alpha / clip).tolist())
        else:
            torch._foreach_mul_(updates, (1.0 / clip).tolist())
            exp_avgs = [local(s["exp_avg"]) for s in states]
            torch._foreach_lerp_(exp_avgs, updates, 1 - beta1)
            updates = torch._foreach_mul(exp_avgs, (-alpha).tolist())
        torch._foreach_add_(params32, updates)
        for p, p32 in zip(params, params32):
            if p32 is not p:
                p.copy_(p32)


def _whole_norms(tensors: list[torch.Tensor], shards) -> torch.Tensor:
    """Each tensor's 2-norm over all its shards (on the CPU, where the scalars are combined)."""
    norms = torch.stack(torch._foreach_norm(tensors))
    if shards is None:
        return norms.cpu()
    return all_reduce(norms.square(), shards).sqrt().cpu()


def spec(model, config):
    from .groups import param_groups
    return Adafactor, param_groups(model, config.weight_decay), dict(
        lr=config.learning_rate, beta1=config.adafactor_beta1, decay_rate=config.adafactor_decay_rate,
        eps=(None, config.adafactor_eps2), clip_threshold=config.adafactor_clip_threshold,
        relative_step=config.adafactor_relative_step, scale_parameter=config.adafactor_scale_parameter)
