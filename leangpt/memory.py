"""`leangpt memory`: where the bytes of a training step (or of generation) go, at any model size.

The step is the trainer's own (`step.py`): forward and backward of each micro-batch, clipping, the
optimizer step, gradients cleared. It is run twice and the second run is tracked, so that the
optimizer state exists throughout, as in every step of a long run. Micro-batches after the second
repeat the second's memory exactly (the gradients of the first are already allocated), so at most
two are run.

Estimate (the default): the model, optimizer and batch are fake tensors (FakeTensorMode), which
carry shapes and dtypes but no data, so a 1.5B-parameter model is estimated in seconds in a few
hundred MB. `measure=True` runs the same step with real tensors on the configured device.

With `world_size > 1` the numbers are one rank's: DDP's gradient buckets (the gradients are views
into them, held for the whole run) count as gradients, and with `zero=True` the optimizer state is
that of the rank ZeroRedundancyOptimizer's partition gives the most parameters. With `fsdp=True`
the model is sharded over a fake process group of world_size ranks in this process (a real one
under torchrun with measure=True), and the numbers are rank 0's (docs/fsdp.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .attention import CausalSelfAttention
from .config import TrainConfig, _require, parse_grid_args
from .device import auto_device, available_ram, resolve
from .errors import ConfigError, LeanGPTError
from .formatting import format_bytes
from .memtrack import FakeScalars, MemoryBreakdown, MemoryTracker, zero_grads_note
from .model import GPT, model_config_from
from .variants import VARIANTS
from .optim import COMPILED_STEP_VARIANTS, StepInBackward, optimizer_spec, state_tensors, storage_bytes
from .step import forward_backward, optimizer_update


NANOGPT_VOCAB = 50304
# an estimate runs each layer once per simulated micro-batch (at most 2), twice over (warm-up and
# tracked step); this bound keeps an estimate under about a minute on a laptop (docs/memory.md)
MAX_LAYER_PASSES = 512
# an estimate's fake process group costs time that grows with its ranks (measured on a 2-core AMD
# EPYC, the seed model under fsdp=True: 256 ranks 10.6 s, 4096 ranks 73 s, 32768 over 2 minutes)
MAX_ESTIMATED_RANKS = 1024


@dataclass
class MemoryConfig(TrainConfig):
    """Every training key, plus what only a memory estimate needs."""

    vocab_size: Optional[int] = None  # None: the prepared dataset's, else nanoGPT's 50304
    world_size: int = 1  # ranks of a torchrun job: numbers are per rank
    measure: bool = False  # run the real step on `device` instead of estimating with fake tensors
    generate: bool = False  # inference instead: weights + KV cache for batch_size x block_size tokens
    stack: bool = False  # one row per technique of the memory stack, added in turn to the plain step

    def validate(self) -> None:
        super().validate()
        if self.vocab_size is not None:
            _require(self.vocab_size >= 1, "vocab_size", self.vocab_size, "must be >= 1")
        _require(self.world_size >= 1, "world_size", self.world_size, "must be >= 1")
        _require(self.gradient_accumulation_steps % self.world_size == 0, "gradient_accumulation_steps",
                 self.gradient_accumulation_steps, f"must be divisible by world_size={self.world_size} (it counts "
                 f"the micro-batches of all ranks together): pass --gradient_accumulation_steps="
                 f"{self.world_size * max(1, round(self.gradient_accumulation_steps / self.world_size))}")
        _require(not self.zero or self.world_size >= 2, "zero", self.zero,
                 "shards optimizer state across ranks: give --world_size=N with N >= 2")
        if not self.measure:
            _require(self.world_size <= MAX_ESTIMATED_RANKS, "world_size", self.world_size,
                     f"is more ranks than an estimate simulates in a minute (at most {MAX_ESTIMATED_RANKS}; its fake "
                     f"process group costs time per rank): estimate at {MAX_ESTIMATED_RANKS}, where the sharded "
                     "parts are already a small share of a rank's memory")
            micro = self.simulated_micro_batches
            _require(self.n_layer * micro <= MAX_LAYER_PASSES, "n_layer", self.n_layer,
                     f"is too deep to estimate in a minute (at most {MAX_LAYER_PASSES // micro} with "
                     f"{micro} micro-batch{'es' if micro > 1 else ''} per rank)")

    @property
    def simulated_micro_batches(self) -> int:
        """Micro-batches after the second repeat its memory exactly: at most two are run."""
        return min(self.gradient_accumulation_steps // self.world_size, 2)


def resolve_vocab_size(config: MemoryConfig) -> int:
    if config.vocab_size is not None:
        return config.vocab_size
    meta = Path(config.data_dir) / config.dataset / "meta.pkl"
    if meta.is_file():
        from .data import load_meta
        return int(load_meta(meta)["vocab_size"])
    return NANOGPT_VOCAB  # no meta.pkl: nanoGPT's GPT-2 data, as training reads it


def zero_partition(params: list[torch.Tensor], world_size: int, groups: list[list[torch.Tensor]]) -> list[set[int]]:
    """ZeroRedundancyOptimizer's partition (optim/owner.py's owner_partition): the ids of each rank's tensors."""
    from .optim.owner import owner_partition
    owned: list[set[int]] = [set() for _ in range(world_size)]
    for p, rank in zip(params, owner_partition(params, world_size, groups)):
        owned[rank].add(id(p))
    return owned


def _state_bytes_per_param(config: MemoryConfig, vocab_size: int) -> list[int]:
    """Each parameter's optimizer-state bytes, from one step of the unsharded optimizer on fake tensors."""
    with _tensor_mode(fake=True):
        model = GPT(model_config_from(config, vocab_size))
        cls, groups, kwargs = optimizer_spec(model, config)
        optimizer = cls(groups, **kwargs)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
        return [storage_bytes(state_tensors(optimizer.state[p]))
                for p in model.parameters()]


def _build_optimizer(model: GPT, config: MemoryConfig, vocab_size: int):
    """The optimizer; with ZeRO, that of the rank whose share of the state is the largest."""
    cls, groups, kwargs = optimizer_spec(model, config)
    if config.zero:
        params = list(model.parameters())
        per_param = dict(zip(map(id, params), _state_bytes_per_param(config, vocab_size)))
        ranks = zero_partition(params, config.world_size, [g["params"] for g in groups])
        mine = max(ranks, key=lambda owned: sum(per_param[i] for i in owned))
        groups = [{**g, "params": [p for p in g["params"] if id(p) in mine]} for g in groups]
        groups = [g for g in groups if g["params"]]
    build = cls
    if config.optimizer_variant in COMPILED_STEP_VARIANTS:
        build = lambda groups, **kw: StateOnlyStep(cls(groups, **kw))  # noqa: E731
    if config.fsdp and VARIANTS[config.optimizer_variant].fsdp_step == "owner":
        from .optim.owner import OwnerStep
        return OwnerStep(model, build, groups, kwargs)  # rank 0's share of the whole tensors
    optimizer = build(groups, **kwargs)
    if config.optimizer_in_backward:
        return StepInBackward(optimizer, lambda group: build([group], **kwargs))
    return optimizer


class StateOnlyStep:
    """A stand-in for an optimizer whose step is torch.compile'd (torchao's AdamW8bit), which the
    tracker cannot see into, nor fake tensors run: its step makes each parameter's state with the
    library's own buffer constructor (so the state bytes are the library's: int8 codes, block
    scales, quantization maps, fp32 moments for small tensors) and leaves the weights alone. What
    the compiled kernel allocates inside itself for the update is not counted (docs/memory.md)."""

    def __init__(self, optimizer):
        if not hasattr(optimizer, "_new_buffer"):
            raise TypeError(f"{type(optimizer).__name__} has no _new_buffer: not a torchao low-bit optimizer")
        self.optimizer = optimizer

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value):
        self.optimizer.param_groups = value

    @property
    def state(self):
        return self.optimizer.state

    @state.setter
    def state(self, value):
        self.optimizer.state = value

    def zero_grad(self, set_to_none: bool = True):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self):
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.optimizer.state[p]
                if not state:  # as torchao's step initializes it
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = self.optimizer._new_buffer(p, True)
                    state["exp_avg_sq"] = self.optimizer._new_buffer(p, False)
                    if group.get("amsgrad"):
                        state["max_exp_avg_sq"] = self.optimizer._new_buffer(p, False)
                state["step"] += 1


def _ddp_gradient_buckets(params: list[torch.Tensor], device: str) -> torch.Tensor:
    """DDP's all-reduce buckets as `gradient_as_bucket_view=True` keeps them: one gradient-sized
    buffer for the life of the model, into which each new gradient is copied and of which the
    parameter's .grad becomes a view (so no gradient-sized storage exists besides it)."""
    buckets = torch.empty(sum(p.numel() for p in params), dtype=params[0].dtype, device=device)
    views, offset = {}, 0
    for p in params:
        views[id(p)] = buckets[offset:offset + p.numel()].view_as(p)
        offset += p.numel()

    def into_bucket(p):
        view = views[id(p)]
        if p.grad.untyped_storage() is not buckets.untyped_storage():
            view.copy_(p.grad)
            p.grad = view

    for p in params:
        p.register_post_accumulate_grad_hook(into_bucket)
    return buckets


@contextlib.contextmanager
def _tensor_mode(fake: bool):
    if not fake:
        yield
        return
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode(), FakeScalars():
        yield


def _model_for(config: MemoryConfig, vocab_size: int, device: str) -> GPT:
    """The model, as the device the config names will run it. An estimate runs CPU kernels on fake
    tensors; for a GPU config, attention then stays in the autocast dtype as on the GPU, where on
    CPU leangpt attends in fp32 (attention.py)."""
    with torch.device(device):
        model = GPT(model_config_from(config, vocab_size))
    target = auto_device() if config.device == "auto" else config.device
    if target.split(":", 1)[0] != "cpu":
        for module in model.modules():
            if isinstance(module, CausalSelfAttention):
                module.cpu_attention_in_fp32 = False
    return model


def step_memory(config: MemoryConfig, vocab_size: int | None = None) -> MemoryBreakdown:
    """The breakdown of one steady-state training step of `config`."""
    config.validate()
    vocab_size = vocab_size or resolve_vocab_size(config)
    runtime = resolve(config.device, config.dtype) if config.measure else resolve("cpu", _cpu_dtype(config.dtype), check_speed=False)
    grad_accum = config.simulated_micro_batches
    with _process_group(config, runtime) if config.fsdp else contextlib.nullcontext() as mesh, \
            _tensor_mode(fake=not config.measure):
        model = _model_for(config, vocab_size, runtime.device)
        if config.fsdp:
            from .fsdp import shard_model
            # as the target device runs it: a CUDA config's bfloat16 is FSDP's policy, not autocast
            target = auto_device() if config.device == "auto" else config.device
            policy = target.startswith("cuda") and runtime.dtype == "bfloat16"
            runtime = dataclasses.replace(runtime, weights_cast=policy)
            shard_model(model, runtime, mesh, mixed_precision=policy)
        model.activation_checkpointing = config.activation_checkpointing
        model.loss_chunk_size = config.loss_chunk_size if config.chunked_loss else 0
        model.train()
        optimizer = _build_optimizer(model, config, vocab_size)
        scaler = torch.amp.GradScaler(enabled=runtime.dtype == "float16")
        shape = (config.batch_size, config.block_size)

        def next_batch():
            return (torch.randint(0, vocab_size, shape, device=runtime.device),
                    torch.randint(0, vocab_size, shape, device=runtime.device))

        def one_step(phase=lambda _: None):
            forward_backward(model, next_batch, grad_accum, runtime, scaler, phase=phase, optimizer=optimizer,
                             grad_clip=config.grad_clip)
            optimizer_update(model, optimizer, scaler, config.grad_clip, phase=phase)

        params = list(model.parameters())
        ddp = config.world_size > 1 and not config.fsdp
        buckets = _ddp_gradient_buckets(params, runtime.device) if ddp else None
        one_step()  # creates the optimizer state
        with MemoryTracker(params, optimizer) as tracker:
            if buckets is not None:
                tracker.label("grads", [buckets])
            one_step(tracker.phase)
            tracker.phase("done")
        return tracker.breakdown()


@contextlib.contextmanager
def _process_group(config: MemoryConfig, runtime):
    """The ranks FSDP shards over. An estimate makes a fake group of world_size ranks in this one
    process (collectives move no data; what FSDP allocates for them is what it allocates for real):
    the numbers are rank 0's, whose shards are the largest. A measurement runs under torchrun."""
    import os
    dist = torch.distributed
    if dist.is_initialized():
        if dist.get_world_size() != config.world_size:
            raise ConfigError(f"world_size={config.world_size} but this process group has {dist.get_world_size()} ranks")
        yield _mesh(config, runtime)
        return
    if config.measure:
        if "RANK" not in os.environ:
            raise ConfigError("measure=True with fsdp=True runs the real step on every rank: launch with "
                              f"torchrun --standalone --nproc_per_node={config.world_size} -m leangpt memory ...")
        dist.init_process_group("gloo")
    else:
        from torch.testing._internal.distributed.fake_pg import FakeStore
        dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=config.world_size)
    try:
        yield _mesh(config, runtime)  # made outside fake tensors: building a mesh reads real values
    finally:
        dist.destroy_process_group()


def _mesh(config: MemoryConfig, runtime):
    from torch.distributed.device_mesh import init_device_mesh
    return init_device_mesh(runtime.device_type, (config.world_size,))


def generation_memory(config: MemoryConfig, vocab_size: int | None = None) -> MemoryBreakdown:
    """Weights, KV cache and temporaries of generating batch_size sequences of block_size tokens:
    a prefill of block_size - 1 prompt tokens, then one decoded token fills the cache."""
    config.validate()
    vocab_size = vocab_size or resolve_vocab_size(config)
    runtime = resolve(config.device, config.dtype) if config.measure else resolve("cpu", _cpu_dtype(config.dtype), check_speed=False)
    with _tensor_mode(fake=not config.measure):
        model = _model_for(config, vocab_size, runtime.device)
        model.eval()
        b, t = config.batch_size, config.block_size
        with torch.no_grad(), MemoryTracker(list(model.parameters())) as tracker, runtime.autocast():
            cache = model.new_kv_cache(b)  # in the autocast dtype, as generate() makes it
            tracker.label("kv_cache", cache.keys + cache.values)
            tracker.phase("prefill")
            if t > 1:
                model(torch.randint(0, vocab_size, (b, t - 1), device=runtime.device), cache=cache)
            tracker.phase("decode")
            model(torch.randint(0, vocab_size, (b, 1), device=runtime.device), cache=cache)
            tracker.phase("done")
        return tracker.breakdown()


def _cpu_dtype(dtype: str) -> str:
    """The estimate runs CPU kernels; "auto" means what a GPU would pick (bfloat16)."""
    if dtype == "float16":
        raise ConfigError("dtype=float16 cannot be estimated (it needs CUDA's kernels); use bfloat16, "
                          "which has the same sizes")
    return "bfloat16" if dtype == "auto" and torch.cuda.is_available() else ("float32" if dtype == "auto" else dtype)


def memory(config: MemoryConfig) -> MemoryBreakdown:
    """Estimate (or with measure=True, measure) the configured step or generation."""
    vocab_size = resolve_vocab_size(config)
    if config.measure:
        _check_room(config, vocab_size)
    return (generation_memory if config.generate else step_memory)(config, vocab_size)


def _check_room(config: MemoryConfig, vocab_size: int) -> None:
    """Refuse a measurement that would not fit, before allocating it."""
    estimate = memory(dataclasses.replace(config, measure=False, vocab_size=vocab_size)).peak
    runtime = resolve(config.device, config.dtype)
    if runtime.device_type == "cuda":
        free = torch.cuda.mem_get_info(torch.device(runtime.device))[0]
    else:
        free = available_ram()
    if free is not None and estimate > 0.9 * free:
        raise LeanGPTError(f"measure=True needs about {format_bytes(estimate)} but {runtime.device} has "
                           f"{format_bytes(free)} free; drop --measure=True to estimate instead")


# ------------------------------------------------------------------ output

COLUMNS = ("params", "grads", "optimizer_state", "activations", "temporaries", "peak")
GENERATE_COLUMNS = ("params", "kv_cache", "temporaries", "peak")


def table(rows: list[dict], keys: list[str], generate: bool, ratio: str | None = None) -> str:
    """A plain-text table: one line per configuration (and the column `ratio` after the peak)."""
    columns = GENERATE_COLUMNS if generate else COLUMNS
    extra = ("peak in",) if generate else ("peak in", "saved for backward")
    head = [*keys, *(c.replace("_", " ") for c in columns), *([ratio] if ratio else []), *extra]
    body = []
    for r in rows:
        cells = [str(r[k]) for k in keys] + [format_bytes(r[c]) for c in columns]
        cells += ([r[ratio]] if ratio else []) + [r["peak_phase"]]
        if not generate:
            cells.append(format_bytes(r["activations_saved"]))
        body.append(cells)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


# the memory stack, each technique added to the ones above it (docs/memory.md)
STACK = (("plain step", {}), ("+ activation checkpointing", {"activation_checkpointing": True}),
         ("+ chunked loss", {"chunked_loss": True}), ("+ optimizer in backward", {"optimizer_in_backward": True}))
STACK_OFF = {"activation_checkpointing": False, "chunked_loss": False, "optimizer_in_backward": False}


def stack_overrides() -> list[dict]:
    """The stack as grid rows: the plain step, then one more technique per row."""
    rows, on = [], dict(STACK_OFF)
    for name, technique in STACK:
        on.update(technique)
        rows.append({"technique": name, **on})
    return rows


def memory_main(argv: list[str]) -> int:
    as_json = "--json" in argv
    argv = [a for a in argv if a != "--json"]
    base, overrides, _ = parse_grid_args(argv, MemoryConfig)
    if base.stack:
        if any(overrides):
            raise ConfigError("stack=True makes its own rows: drop --grid (or run one stack per configuration)")
        overrides = stack_overrides()
    keys = list(dict.fromkeys(k for o in overrides for k in o))
    rows = []
    for o in overrides:
        config = dataclasses.replace(base, **{k: v for k, v in o.items() if k != "technique"})
        try:
            config.validate()
        except ConfigError as exc:
            raise ConfigError(f"{', '.join(f'{k}={v}' for k, v in o.items()) or 'config'}: {exc}") from None
        started = time.perf_counter()
        result = memory(config).as_dict()
        if not base.generate:
            result.pop("kv_cache")
        rows.append({**o, **result, "seconds": round(time.perf_counter() - started, 2)})
    if base.stack:
        keys = ["technique"]
        for row in rows:
            row["vs plain"] = f"{row['peak'] / rows[0]['peak']:.2f}x"
    if as_json:
        print(json.dumps(rows, indent=1))
    else:
        how = "measured or estimated (see measure)" if "measure" in keys else (
            "measured" if base.measure else "estimated")
        what = "generation" if base.generate else "one training step"
        print(f"memory of {what}, {how}, bytes alive at the peak by category"
              + (f" (per rank of {base.world_size})" if base.world_size > 1 else ""))
        print(table(rows, keys, base.generate, ratio="vs plain" if base.stack else None))
        if not base.generate:
            for note in dict.fromkeys(zero_grads_note(r["grads"], r["peak_phase"], r.get("optimizer_in_backward",
                                                                                       base.optimizer_in_backward))
                                      for r in rows):
                if note:
                    print(note)
    return 0
