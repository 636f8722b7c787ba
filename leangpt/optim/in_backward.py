"""The optimizer step inside the backward pass: each parameter is updated as soon as its gradient
is complete, and the gradient is freed at once, so the gradients of the whole model never exist
together (the trick of LOMO, GaLore's 7B-on-24-GB run and torchtune's optimizer-in-backward).

`StepInBackward` wraps the trainer's ordinary optimizer, which keeps the parameter groups and the
state: the checkpoint format, the learning-rate schedule and resume are the plain trainer's. Each
group gets a stepping optimizer of the same class and settings, sharing that state, and every
parameter a post-accumulate-grad hook. Group-level settings (the scheduled lr, the step counter
some optimizers keep per group) are copied in from the wrapped optimizer at the start of each step
and back at its end, so every parameter of a group sees the values the plain step sees.

A parameter of at least `bucket_bytes` of gradient is stepped alone, at once. Smaller ones wait in
their group's bucket until it holds `bucket_bytes`, then step together in one call (and at the end
of the backward pass, whatever is left): an optimizer call costs a fixed ~0.1-0.2 ms on CPU, which
at the seed model's 27 small tensors was a sixth of the step. The bucket holds at most about
`bucket_bytes` of gradient more than a one-at-a-time step would.

Global-norm clipping needs every gradient's norm before the first update: with `grad_clip > 0`
a first backward pass only adds up the norms (freeing each gradient), then the same batch runs
again, with the same RNG state, and the hooks step with the clipped gradients. That costs one
more forward and backward pass; the updates equal the plain trainer's.
"""

from __future__ import annotations

import torch


BUCKET_BYTES = 1 << 20  # 1 MiB of gradient: GPT-2's matrices step alone, LayerNorms and biases together


class StepInBackward:
    def __init__(self, optimizer: torch.optim.Optimizer, build_group, bucket_bytes: int | None = None):
        """`build_group(group)` makes the stepping optimizer for a copy of one group (whose params
        are then swapped for the ones ready to step)."""
        bucket_bytes = BUCKET_BYTES if bucket_bytes is None else bucket_bytes
        if bucket_bytes < 0:
            raise ValueError(f"bucket_bytes={bucket_bytes} must be >= 0")
        self.optimizer = optimizer
        self.bucket_bytes = bucket_bytes
        self.grad_clip_coef: torch.Tensor | None = None  # set between the two passes when clipping
        self.measuring_norm = False
        self.norms: dict[int, torch.Tensor] = {}  # id(parameter) -> its gradient's norm
        self._snapshot: list[dict] = []
        self._stepped: dict[int, dict] = {}
        self._group_of: dict[int, int] = {}  # id(parameter) -> its group's index
        self._stepping = [build_group({**group, "params": list(group["params"])}) for group in optimizer.param_groups]
        self._buckets: list[list[torch.Tensor]] = [[] for _ in optimizer.param_groups]
        self._bucket_bytes = [0] * len(optimizer.param_groups)
        self._flush_queued = False
        self._handles = []
        for index, group in enumerate(optimizer.param_groups):
            for p in group["params"]:
                self._group_of[id(p)] = index
                self._handles.append(p.register_post_accumulate_grad_hook(self._hook))

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict):
        self.optimizer.load_state_dict(state_dict)

    def zero_grad(self, set_to_none: bool = True):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def begin_step(self) -> None:
        """Before the backward pass that steps: the groups' settings as the plain step would see them."""
        self._snapshot = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        self._stepped = {}

    def end_step(self) -> None:
        """After it: group-level counters advanced by the one-parameter steps go back to the groups."""
        for index, group in self._stepped.items():
            self.optimizer.param_groups[index].update({k: v for k, v in group.items() if k != "params"})
        self.grad_clip_coef = None

    @torch.no_grad()
    def _hook(self, p: torch.Tensor) -> None:
        if self.measuring_norm:
            self.norms[id(p)] = torch._foreach_norm([p.grad])[0]  # as clip_grad_norm_ computes it
            p.grad = None
            return
        index = self._group_of[id(p)]
        nbytes = p.grad.numel() * p.grad.element_size()
        if nbytes >= self.bucket_bytes:
            self._step(index, [p])
            return
        self._buckets[index].append(p)
        self._bucket_bytes[index] += nbytes
        if self._bucket_bytes[index] >= self.bucket_bytes:
            self._flush(index)
        elif not self._flush_queued:
            # what is left in the buckets steps when the backward pass ends (as DDP's reducer does)
            torch.autograd.Variable._execution_engine.queue_callback(self._flush_all)
            self._flush_queued = True

    def _flush(self, index: int) -> None:
        bucket, self._buckets[index], self._bucket_bytes[index] = self._buckets[index], [], 0
        if bucket:
            self._step(index, bucket)

    @torch.no_grad()
    def _flush_all(self) -> None:
        self._flush_queued = False
        for index in range(len(self._buckets)):
            self._flush(index)

    def _step(self, index: int, params: list[torch.Tensor]) -> None:
        stepping = self._stepping[index]
        group = stepping.param_groups[0]
        group.update(self._snapshot[index])
        group["params"] = params
        stepping.state = self.optimizer.state  # load_state_dict replaces the wrapped optimizer's dict
        if self.grad_clip_coef is not None:
            torch._foreach_mul_([p.grad for p in params], self.grad_clip_coef)
        stepping.step()
        for p in params:
            p.grad = None
        self._stepped[index] = group

    def clip_coefficient(self, max_norm: float, params) -> torch.Tensor:
        """torch.nn.utils.clip_grad_norm_'s factor, from the norms the measuring pass collected,
        summed in the order of `params` (the model's, as the plain trainer's clip sums them)."""
        total = torch.linalg.vector_norm(torch.stack([self.norms[id(p)] for p in params if id(p) in self.norms]))
        self.norms = {}
        return torch.clamp(max_norm / (total + 1e-6), max=1.0)
