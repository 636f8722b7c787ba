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
"""

from __future__ import annotations

import torch

from ._common import VectorizedOptimizer, check_nonnegative


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
            if p.dim() >= 2:
                state["row_var"] = torch.zeros(p.shape[:-1] + (1,), dtype=torch.float32, device=p.device)
                state["col_var"] = torch.zeros(p.shape[:-2] + (1, p.shape[-1]), dtype=torch.float32, device=p.device)
            else:
                state["variance"] = torch.zeros(p.shape, dtype=torch.float32, device=p.device)
            if group["beta1"] is not None:
                state["exp_avg"] = torch.zeros(p.shape, dtype=torch.float32, device=p.device)
        return state

    def _update(self, group, params, states) -> None:
        lr, wd, beta1 = group["lr"], group["weight_decay"], group["beta1"]
        eps1, eps2 = group["eps"]
        for state in states:
            state["step"] += 1
        steps = torch.tensor([s["step"] for s in states], dtype=torch.float32)
        params32 = [p if p.dtype == torch.float32 else p.float() for p in params]
        grads = [p.grad.float() for p in params]

        # the clamp floor: eps1 squared, since the clamp acts before the square root
        floor = (torch.finfo(torch.float32).eps if eps1 is None else eps1) ** 2
        factors, lowest = [], []
        for g, state in zip(grads, states):
            one_minus_beta2 = state["step"] ** group["decay_rate"]
            g_sq = g * g  # reduced twice below: cheaper than two strided norms of g
            if g.dim() >= 2:
                row_var, col_var = state["row_var"], state["col_var"]
                row_var.lerp_(g_sq.sum(dim=-1, keepdim=True).div_(g.size(-1)), one_minus_beta2)
                col_var.lerp_(g_sq.sum(dim=-2, keepdim=True).div_(g.size(-2)), one_minus_beta2)
                scaled_rows = row_var / row_var.mean(dim=-2, keepdim=True).clamp_(min=floor ** 0.5)
                factors.append((scaled_rows, col_var))
                lowest.append(scaled_rows.amin() * col_var.amin())
            else:
                state["variance"].lerp_(g_sq, one_minus_beta2)
                factors.append((state["variance"], None))
        clamp_needed = iter((torch.stack(lowest) < floor).tolist() if lowest else [])

        updates = []
        for g, (rows, cols) in zip(grads, factors):
            if cols is None:
                updates.append(rows.clamp(min=floor).rsqrt_().mul_(g))
            elif next(clamp_needed):  # V_hat = R C / mean(R) has entries below eps1^2: clamp them
                updates.append((rows * cols).clamp_(min=floor).rsqrt_().mul_(g))
            else:  # no entry needs the clamp: 1/sqrt(V_hat) factors too, so V_hat is never built
                updates.append((g * rows.rsqrt()).mul_(cols.rsqrt()))

        # every per-parameter scalar at once: one host sync per group instead of two per parameter
        numels = torch.tensor([p.numel() for p in params], dtype=torch.float32)
        update_rms = torch.stack(torch._foreach_norm(updates)).cpu() / numels.sqrt()
        clip = torch.clamp(update_rms / group["clip_threshold"], min=1.0)
        rho = torch.clamp(1.0 / steps.sqrt(), max=lr) if group["relative_step"] else torch.full_like(steps, lr)
        if group["scale_parameter"]:
            param_rms = torch.stack(torch._foreach_norm(params32)).cpu() / numels.sqrt()
            alpha = torch.clamp(param_rms, min=eps2) * rho
        else:
            alpha = rho

        if wd != 0:
            torch._foreach_mul_(params32, 1 - lr * wd)
        if beta1 is None:
            torch._foreach_mul_(updates, (-alpha / clip).tolist())
        else:
            torch._foreach_mul_(updates, (1.0 / clip).tolist())
            exp_avgs = [s["exp_avg"] for s in states]
            torch._foreach_lerp_(exp_avgs, updates, 1 - beta1)
            updates = torch._foreach_mul(exp_avgs, (-alpha).tolist())
        torch._foreach_add_(params32, updates)
        for p, p32 in zip(params, params32):
            if p32 is not p:
                p.copy_(p32)


def spec(model, config):
    from .groups import param_groups
    return Adafactor, param_groups(model, config.weight_decay), dict(
        lr=config.learning_rate, beta1=config.adafactor_beta1, decay_rate=config.adafactor_decay_rate,
        eps=(None, config.adafactor_eps2), clip_threshold=config.adafactor_clip_threshold,
        relative_step=config.adafactor_relative_step, scale_parameter=config.adafactor_scale_parameter)
