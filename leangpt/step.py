"""One training step, shared by the trainer and the memory measurement, so that what
`leangpt memory` measures is exactly what `train.py` runs.

`phase` receives "forward", "backward" and "optimizer" as the step enters each; the memory
tracker uses it to tell activations from temporaries. Training passes a no-op.
"""

from __future__ import annotations

import torch


def _no_phase(name: str) -> None:
    pass


def forward_backward(model, next_batch, grad_accum: int, runtime, scaler, ddp: bool = False,
                     phase=_no_phase) -> torch.Tensor:
    """Accumulate the gradients of `grad_accum` micro-batches; return the summed (scaled) loss."""
    loss_sum = torch.zeros((), device=runtime.device)
    for micro_step in range(grad_accum):
        if ddp:  # all-reduce the gradients only once, after the last micro-batch
            model.require_backward_grad_sync = micro_step == grad_accum - 1
        x, y = (t.to(runtime.device, non_blocking=True) for t in next_batch())
        phase("forward")
        with runtime.autocast():
            # the logits are dropped at once: backward needs only log_softmax's output, and
            # keeping them (nanoGPT's `logits, loss = model(X, Y)`) holds batch x block x vocab
            # floats through the whole backward pass
            loss = model(x, y)[1] / grad_accum
        loss_sum += loss.detach()
        phase("backward")
        scaler.scale(loss).backward()
    return loss_sum


def optimizer_update(model, optimizer, scaler, grad_clip: float, phase=_no_phase) -> None:
    """Clip, step and clear the gradients (set to None, so they are freed until the next backward)."""
    phase("optimizer")
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
