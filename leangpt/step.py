"""One training step, shared by the trainer and the memory measurement, so that what
`leangpt memory` measures is exactly what `train.py` runs.

`phase` receives "forward", "backward" and "optimizer" as the step enters each; the memory
tracker uses it to tell activations from temporaries. Training passes a no-op.
"""

from __future__ import annotations

import torch

from .optim.in_backward import StepInBackward


def _no_phase(name: str) -> None:
    pass


def forward_backward(model, next_batch, grad_accum: int, runtime, scaler, ddp: bool = False,
                     phase=_no_phase, optimizer=None, grad_clip: float = 0.0,
                     should_stop=lambda: False) -> torch.Tensor | None:
    """Accumulate the gradients of `grad_accum` micro-batches; return the summed (scaled) loss.
    With an optimizer that steps inside the backward pass, that pass also updates the weights.
    `should_stop()` is asked between micro-batches (a stop then waits for one micro-batch, not a
    whole step); when it says yes, the gradients so far are left to the caller and None returned."""
    if isinstance(optimizer, StepInBackward):
        return _forward_backward_stepping(model, next_batch(), runtime, optimizer, grad_clip, phase)
    loss_sum = torch.zeros((), device=runtime.device)
    for micro_step in range(grad_accum):
        if micro_step > 0 and should_stop():
            return None
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


def _forward_backward_stepping(model, batch, runtime, optimizer: StepInBackward, grad_clip: float,
                               phase) -> torch.Tensor:
    """One micro-batch whose backward pass steps every parameter. Clipping by the global norm
    runs it twice: a pass that only measures the norm, then, from the same RNG state, the pass
    that steps with the clipped gradients."""
    x, y = (t.to(runtime.device, non_blocking=True) for t in batch)
    coef = None
    if grad_clip > 0:
        rng = _rng_state(runtime.device)
        optimizer.measuring_norm = True
        try:
            _one_pass(model, x, y, runtime, phase)
        finally:
            optimizer.measuring_norm = False
        coef = optimizer.clip_coefficient(grad_clip, model.parameters())
        _set_rng_state(runtime.device, rng)
    optimizer.begin_step()
    optimizer.grad_clip_coef = coef
    return _one_pass(model, x, y, runtime, phase)


def _one_pass(model, x, y, runtime, phase) -> torch.Tensor:
    phase("forward")
    with runtime.autocast():
        loss = model(x, y)[1]
    phase("backward")
    loss.backward()
    return loss.detach()


def _rng_state(device: str):
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.startswith("cuda") else None


def _set_rng_state(device: str, state) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def optimizer_update(model, optimizer, scaler, grad_clip: float, phase=_no_phase) -> None:
    """Clip, step and clear the gradients (set to None, so they are freed until the next backward)."""
    phase("optimizer")
    if isinstance(optimizer, StepInBackward):  # the backward pass stepped and freed them
        optimizer.end_step()
        return
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
