"""The optimizer step inside the backward pass: each parameter is updated as soon as its gradient
is complete, and the gradient is freed at once, so the gradients of the whole model never exist
together (the trick of LOMO, GaLore's 7B-on-24-GB run and torchtune's optimizer-in-backward).

`StepInBackward` wraps the trainer's ordinary optimizer, which keeps the parameter groups and the
state: the checkpoint format, the learning-rate schedule and resume are the plain trainer's. Each
parameter gets a one-parameter optimizer of the same class and settings, sharing that state, and
a post-accumulate-grad hook that steps it. Group-level settings (the scheduled lr, the step
counter some optimizers keep per group) are copied in from the wrapped optimizer at the start of
each step and back at its end, so every parameter of a group sees the values the plain step sees.

Global-norm clipping needs every gradient's norm before the first update: with `grad_clip > 0`
a first backward pass only adds up the norms (freeing each gradient), then the same batch runs
again, with the same RNG state, and the hooks step with the clipped gradients. That costs one
more forward and backward pass; the updates equal the plain trainer's.
"""

from __future__ import annotations

import torch


class StepInBackward:
    def __init__(self, optimizer: torch.optim.Optimizer, build_one):
        """`build_one(group)` makes the one-parameter optimizer for a group holding one parameter."""
        self.optimizer = optimizer
        self.grad_clip_coef: torch.Tensor | None = None  # set between the two passes when clipping
        self.measuring_norm = False
        self.norms: dict[int, torch.Tensor] = {}  # id(parameter) -> its gradient's norm
        self._snapshot: list[dict] = []
        self._stepped: dict[int, dict] = {}
        self._single: dict[int, tuple[torch.optim.Optimizer, int]] = {}
        self._handles = []
        for index, group in enumerate(optimizer.param_groups):
            for p in group["params"]:
                single = build_one({**group, "params": [p]})
                self._single[id(p)] = (single, index)
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
        single, index = self._single[id(p)]
        group = single.param_groups[0]
        group.update(self._snapshot[index])
        single.state = self.optimizer.state  # load_state_dict replaces the wrapped optimizer's dict
        if self.grad_clip_coef is not None:
            p.grad.mul_(self.grad_clip_coef)
        single.step()
        p.grad = None
        self._stepped[index] = group

    def clip_coefficient(self, max_norm: float, params) -> torch.Tensor:
        """torch.nn.utils.clip_grad_norm_'s factor, from the norms the measuring pass collected,
        summed in the order of `params` (the model's, as the plain trainer's clip sums them)."""
        total = torch.linalg.vector_norm(torch.stack([self.norms[id(p)] for p in params if id(p) in self.norms]))
        self.norms = {}
        return torch.clamp(max_norm / (total + 1e-6), max=1.0)
