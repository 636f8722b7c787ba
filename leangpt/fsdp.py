"""FSDP2 (`torch.distributed.fsdp.fully_shard`): every rank holds 1/N of the weights, gradients
and optimizer state, and gathers one block's weights at a time for its forward and backward.

Each transformer block is one FSDP unit, and the root (embeddings, the tied output layer, the
final LayerNorm) another: the tied weight lives in the root, so it is gathered once and its two
gradients add up before the reduce-scatter. On CUDA with bfloat16, FSDP2's MixedPrecisionPolicy
keeps float32 shards, gathers bfloat16 weights and reduces gradients in float32; on a CPU the
usual autocast runs over float32 weights.

Gradients are reduce-scattered after every micro-batch (not accumulated whole and reduced once,
as DDP does): accumulating unsharded gradients would hold the whole model's gradients on every
rank, the memory FSDP is there to remove.
"""

from __future__ import annotations

import torch

from .errors import ConfigError


def _api():
    try:
        from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
    except ImportError:  # torch < 2.6 kept FSDP2 private
        raise ConfigError(f"fsdp=True needs torch.distributed.fsdp.fully_shard (torch >= 2.6; this is torch "
                          f"{torch.__version__})") from None
    return FSDPModule, MixedPrecisionPolicy, fully_shard


def shard_model(model: torch.nn.Module, runtime, mesh=None, mixed_precision: bool | None = None) -> torch.nn.Module:
    """Shard `model` in place (each block, then the root) and return it; build the optimizer after
    this: one built before holds the unsharded tensors, which no longer train. `mixed_precision`
    (default: where the runtime calls for it) gathers bfloat16 weights and reduces in float32."""
    FSDPModule, MixedPrecisionPolicy, fully_shard = _api()
    kwargs = {"mesh": mesh} if mesh is not None else {}
    if uses_mixed_precision_policy(runtime) if mixed_precision is None else mixed_precision:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for block in getattr(getattr(model, "transformer", None), "h", ()):  # a GPT's blocks (any module shards whole)
        fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    if torch.distributed.get_backend() == "gloo":
        # pytorch#162338: gloo's AVG reduce-scatter under FSDP2 sums instead of averaging; only SUM
        # reductions (with FSDP dividing by the world size itself) are right there
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_force_sum_reduction_for_comms(True)
    return model


def uses_mixed_precision_policy(runtime) -> bool:
    """Whether FSDP2 casts the weights itself (then autocast must not run as well)."""
    return runtime.device_type == "cuda" and runtime.dtype == "bfloat16"
