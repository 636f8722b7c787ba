"""The registry of optimizer variants: one entry per value of `--optimizer_variant`.

Each entry says how the optimizer is built (a `spec(model, config)` function in its own module),
what it needs installed, which shared settings it reads, the settings only it has (typed,
defaulted, checked), where its implementation comes from, and the learning rate it was tuned at
on the course's seed model (with `config/tuned_NAME.py` holding the tuned settings).

Everything else that lists variants is derived from `VARIANTS`: the config's allowed values and
its per-variant keys (config.py), the tuned-lr hint (checks.py), the settings a report shows for a
run (report.py) and the library column of the field table (bench/optim_field_table.py).

To add an optimizer: write its module (or glue in optim/field.py) with a `spec` function, add one
entry below, its tests and config/tuned_NAME.py. This module imports no torch: the command line
reads it before anything is trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

# checks a per-variant key's value must pass: (test, what the error says)
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "unit": (lambda v: 0.0 <= v < 1.0, "must be in [0, 1)"),
    "closed_unit": (lambda v: 0.0 <= v <= 1.0, "must be in [0, 1]"),
    "positive": (lambda v: math.isfinite(v) and v > 0, "must be a finite number > 0"),
    "finite_positive": (lambda v: math.isfinite(v) and v > 0, "must be a finite number > 0"),
    "nonnegative": (lambda v: math.isfinite(v) and v >= 0, "must be a finite number >= 0"),
    "negative": (lambda v: v < 0, "must be < 0"),
    "count": (lambda v: v >= 1, "must be >= 1"),
    "ns_steps": (lambda v: 1 <= v < 100, "must be from 1 to 99 (torch's Muon takes fewer than 100)"),
}


@dataclass(frozen=True)
class Key:
    """A setting only one variant reads: a field of TrainConfig named `name`."""

    name: str
    type: Any
    default: Any
    rule: str | None = None  # a key of RULES; None values pass (Optional keys)

    def check(self, value) -> str | None:
        """The error message for `value`, or None when it passes."""
        if self.rule is None or value is None:
            return None
        ok, says = RULES[self.rule]
        if self.default is None:  # an Optional key
            says = "must be None or " + says.removeprefix("must be ")
        return None if ok(value) else says


@dataclass(frozen=True)
class Variant:
    name: str
    spec: str  # "module:function" building (optimizer class, parameter groups, keyword arguments)
    source: str  # whose implementation it is (the field table's "library" column)
    tuned_lr: float | None  # best learning rate on the seed CPU model (config/tuned_NAME.py)
    shared_keys: tuple[str, ...] = ()  # the TrainConfig settings it reads besides the lr schedule
    keys: tuple[Key, ...] = ()
    requires: str | None = None  # "module:function" raising MissingDependency when its library is absent
    compiled_step: bool = False  # its step is torch.compile'd: the memory tracker cannot see into it
    # why its update cannot run one parameter at a time inside the backward pass ("" where it can)
    in_backward_refusal: str = ""
    # why it cannot run exactly on FSDP2's row shards ("" where it can: docs/fsdp.md says how)
    fsdp_refusal: str = ""
    # how it steps under FSDP: on the shards themselves, or each parameter whole on an owner rank
    # (optim/owner.py) where its library computes on whatever tensor it is handed
    fsdp_step: Literal["shards", "owner"] = "shards"

    @property
    def in_backward(self) -> bool:
        return not self.in_backward_refusal

    @property
    def tuned_config(self) -> str:
        return f"config/tuned_{self.name}.py"

    @property
    def settings(self) -> tuple[str, ...]:
        """Every config key that changes what this variant computes."""
        return self.shared_keys + tuple(k.name for k in self.keys)


ADAM = ("beta1", "beta2", "eps")
ADAMW = ("weight_decay", *ADAM)
FIELD = "leangpt.optim.field"
NEEDS_PYTORCH_OPTIMIZER = f"{FIELD}:require_pytorch_optimizer"

VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("adam", "leangpt.optim.adam:adam_spec", "torch.optim.Adam", 3e-3, ADAM),
    Variant("adamw", "leangpt.optim.adam:adamw_spec", "torch.optim.AdamW", 5e-3, ADAMW),
    Variant("adamsn", "leangpt.optim.adamsn:spec", "leangpt (ours)", 5e-2, ADAMW, (
        Key("adamsn_params", Literal["linear", "all_2d"], "linear"),
        Key("adamsn_dense_lr_ratio", float, 1.0, "finite_positive"),  # lr multiplier for what stays plain Adam
    )),
    Variant("adafactor", "leangpt.optim.adafactor:spec", "leangpt (paper's update)", 5e-2, ("weight_decay",), (
        Key("adafactor_relative_step", bool, False),
        Key("adafactor_scale_parameter", bool, True),
        Key("adafactor_beta1", Optional[float], None, "unit"),
        Key("adafactor_decay_rate", float, -0.8, "negative"),
        Key("adafactor_eps2", float, 1e-3, "nonnegative"),
        Key("adafactor_clip_threshold", float, 1.0, "positive"),
    )),
    Variant("adamsnsm", "leangpt.optim.adamsnsm:spec", "leangpt (ours)", 5e-2, ADAMW, (
        Key("adamsnsm_rank", int, 128, "count"),  # subspace the momentum lives in, per 2-D weight
        Key("adamsnsm_update_proj_gap", int, 200, "count"),  # steps between SVD refreshes (momentum restarts)
    ), fsdp_step="owner"),
    Variant("muon", "leangpt.optim.muon:spec", "torch.optim.Muon + AdamW", 5e-3, ADAMW, (
        Key("muon_momentum", float, 0.95, "unit"),
        Key("muon_nesterov", bool, True),
        Key("muon_ns_steps", int, 5, "ns_steps"),  # Newton-Schulz iterations
        # leangpt's default: one lr serves the Muon and the AdamW parts
        Key("muon_adjust_lr_fn", Literal["match_rms_adamw", "original"], "match_rms_adamw"),
    ), requires="leangpt.optim.muon:require_muon"),
    Variant("lion", f"{FIELD}:lion_spec", "pytorch-optimizer", 5e-4, ("weight_decay",), (
        Key("lion_beta1", float, 0.9, "unit"),
        Key("lion_beta2", float, 0.99, "unit"),
    ), requires=NEEDS_PYTORCH_OPTIMIZER),
    Variant("adam_mini", f"{FIELD}:adam_mini_spec", "pytorch-optimizer", 5e-3, ADAMW,
            requires=NEEDS_PYTORCH_OPTIMIZER, fsdp_step="owner"),
    Variant("came", f"{FIELD}:came_spec", "pytorch-optimizer", 5e-4, ("weight_decay", "beta1", "beta2"), (
        Key("came_beta3", float, 0.9999, "unit"),  # the confidence EMA
        Key("came_clip_threshold", float, 1.0, "finite_positive"),
    ), requires=NEEDS_PYTORCH_OPTIMIZER, fsdp_step="owner"),
    Variant("sm3", f"{FIELD}:sm3_spec", "pytorch-optimizer", 3e-2, (), (  # SM3 has no weight decay
        Key("sm3_momentum", float, 0.0, "unit"),  # > 0 keeps a full-size momentum buffer
        Key("sm3_beta", float, 0.0, "closed_unit"),  # 0: SM3's running max accumulator; > 0: an EMA of it
    ), requires=NEEDS_PYTORCH_OPTIMIZER, fsdp_step="owner"),
    Variant("galore", f"{FIELD}:galore_spec", "pytorch-optimizer", 5e-2, ADAMW, (
        Key("galore_rank", int, 128, "count"),
        Key("galore_update_proj_gap", int, 200, "count"),
        Key("galore_scale", float, 0.25, "finite_positive"),
        Key("galore_proj_type", Literal["std", "reverse_std", "left", "right", "full"], "std"),
    ), requires=NEEDS_PYTORCH_OPTIMIZER, fsdp_step="owner"),
    Variant("apollo", f"{FIELD}:apollo_spec", "pytorch-optimizer", 2e-2, (*ADAMW, "seed"), (
        Key("apollo_rank", int, 256, "count"),
        Key("apollo_update_proj_gap", int, 200, "count"),
        Key("apollo_scale", float, 1.0, "finite_positive"),
        Key("apollo_scale_type", Literal["channel", "tensor"], "channel"),
    ), requires=NEEDS_PYTORCH_OPTIMIZER,
       in_backward_refusal="its step draws every matrix's random projection from one stream in parameter order",
       fsdp_refusal="its step draws every matrix's random projection from one stream in parameter order, which "
                    "ranks stepping their own matrices cannot reproduce"),
    Variant("adamw8bit", f"{FIELD}:adamw8bit_spec", "torchao", 8e-3, ADAMW, (
        Key("adamw8bit_block_size", int, 256, "count"),
    ), requires=f"{FIELD}:adamw8bit_class", compiled_step=True, fsdp_step="owner"),
)}

NAMES = tuple(VARIANTS)
OptimizerVariant = Literal[NAMES]  # the type of TrainConfig.optimizer_variant
KEYS: tuple[Key, ...] = tuple(k for v in VARIANTS.values() for k in v.keys)
COMPILED_STEP_VARIANTS = tuple(name for name, v in VARIANTS.items() if v.compiled_step)


def resolve(target: str):
    """The function a "module:function" string names (imported now, not when the registry is read)."""
    import importlib
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)
