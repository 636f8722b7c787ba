"""Cross-entropy of the output layer, a chunk of tokens at a time (chunked linear cross-entropy).

nanoGPT's loss builds the logits (tokens x vocab), log-softmax keeps its output of the same size
for the backward pass, and the backward pass makes the logits' gradient, a third such tensor: at
GPT-2 size and batch 8 they are gigabytes each, more than the whole model. Here the output
projection and the loss run inside one autograd function over `chunk_size` tokens at a time: the
forward pass keeps only each chunk's loss, the backward pass recomputes each chunk's logits and
turns them straight into the gradients of the hidden states and of the (tied) output weight. So
no tensor of vocab size outlives one chunk. The cost is one more matmul of the output layer.

Written here, not glued: Liger-Kernel's and Apple's fused versions need Triton on a GPU.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -1  # nanoGPT's ignore_index


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                          chunk_size: int) -> torch.Tensor:
    """mean over tokens with a target of -log softmax(hidden @ weight.T)[target]; equal to
    F.cross_entropy(hidden @ weight.T, targets, ignore_index=-1) (and under autocast, to the same
    computed with the autocast dtype's matmuls and fp32 softmax, as autocast runs it)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} must be >= 1")
    device_type = hidden.device.type
    dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else weight.dtype
    return _ChunkedLinearCrossEntropy.apply(hidden.reshape(-1, hidden.size(-1)), weight, targets.reshape(-1),
                                            chunk_size, dtype)


def _chunk_logits(x: torch.Tensor, low_weight: torch.Tensor) -> torch.Tensor:
    """One chunk's logits in fp32, from a matmul in the weight's `dtype` (autocast's rounding)."""
    return (x.to(low_weight.dtype) @ low_weight.t()).float()


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, targets, chunk_size: int, dtype: torch.dtype):
        with torch.autocast(x.device.type, enabled=False):  # the dtypes are explicit below
            valid = targets != IGNORE_INDEX
            total = torch.zeros((), dtype=torch.float32, device=x.device)
            lse = torch.empty(x.size(0), dtype=torch.float32, device=x.device)  # kept: one float per token
            low_w = weight.to(dtype)  # autocast's copy of the weight (the weight itself in fp32)
            for start in range(0, x.size(0), chunk_size):
                rows = slice(start, start + chunk_size)
                logits = _chunk_logits(x[rows], low_w)
                picked = logits.gather(1, targets[rows].clamp(min=0).unsqueeze(1)).squeeze(1)
                lse[rows] = torch.logsumexp(logits, dim=-1)
                total += ((lse[rows] - picked) * valid[rows]).sum()
                del logits
            del low_w
            count = valid.sum()
        ctx.save_for_backward(x, weight, targets, count, lse)
        ctx.chunk_size, ctx.dtype = chunk_size, dtype
        return total / count

    @staticmethod
    def backward(ctx, grad_loss):
        x, weight, targets, count, lse = ctx.saved_tensors
        chunk_size, dtype = ctx.chunk_size, ctx.dtype
        with torch.autocast(x.device.type, enabled=False):
            scale = grad_loss.float() / count  # d(mean)/d(each token's loss)
            grad_x = torch.empty_like(x)
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            low_w = weight.to(dtype)
            for start in range(0, x.size(0), chunk_size):
                rows = slice(start, start + chunk_size)
                t = targets[rows]
                # d loss / d logits = softmax - one_hot(target), for tokens with a target; in place,
                # so that one chunk-sized buffer serves the whole chain
                grad_logits = _chunk_logits(x[rows], low_w)
                grad_logits.sub_(lse[rows].unsqueeze(1)).exp_()
                valid = (t != IGNORE_INDEX).unsqueeze(1)
                grad_logits.scatter_add_(1, t.clamp(min=0).unsqueeze(1), -valid.to(grad_logits.dtype))
                grad_logits = grad_logits.mul_(valid * scale).to(dtype)
                grad_x[rows] = (grad_logits @ low_w).to(x.dtype)
                if dtype == torch.float32:  # accumulate in place: no vocab x width temporary
                    grad_w.addmm_(grad_logits.t(), x[rows])
                else:
                    grad_w.add_(grad_logits.t() @ x[rows].to(dtype))
                del grad_logits
        return grad_x, grad_w.to(weight.dtype), None, None, None
