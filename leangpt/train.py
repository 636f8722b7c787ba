"""The training loop: nanoGPT's, with exact resume, atomic checkpoints and a clean stop on faults.

Read `run_loop()` first: evaluate when due, stop at max_iters, take one optimizer step of
gradient_accumulation_steps micro-batches, log. `setup()` before it builds what the loop needs
(device, data, model, optimizer, maybe from a checkpoint); the functions between them are the
loop's steps. Checkpoints hold every RNG state (trainstate.py), so a run stopped at iteration N
and resumed prints the same losses as one that never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from . import checkpoint
from .checks import other_configuration, resume_changes, tuned_lr_hint
from .config import TrainConfig
from .data import BatchSampler, dataset_paths, load_meta
from .device import Runtime, check_compile, resolve
from .distributed import Distributed, is_communication_error, setup_distributed
from .errors import ConfigError
from .fileio import atomic_write_json, directory_lock
from .formatting import format_bytes, format_duration
from .memtrack import MemoryTracker
from .metrics import MetricsLogger, RunRecords
from .optim import COMPILED_STEP_VARIANTS, adamw_state_bytes, build_optimizer, load_variant, state_bytes
from .step import forward_backward, optimizer_update
from .trainstate import TrainingError, TrainState, build_model, new_samplers, restore, save

__all__ = ["train", "get_lr", "TrainingError"]


def get_lr(it: int, config: TrainConfig) -> float:
    """Linear warmup, then cosine decay from learning_rate to min_lr at lr_decay_iters (nanoGPT's)."""
    if not config.decay_lr:
        return config.learning_rate
    if it < config.warmup_iters:
        return config.learning_rate * (it + 1) / (config.warmup_iters + 1)
    # a decay horizon inside the warmup (a short debugging run): nanoGPT's order of checks warms up
    # to warmup_iters, then holds min_lr; its cosine would divide by zero at it == both
    if it > config.lr_decay_iters or config.lr_decay_iters <= config.warmup_iters:
        return config.min_lr
    ratio = (it - config.warmup_iters) / (config.lr_decay_iters - config.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return config.min_lr + coeff * (config.learning_rate - config.min_lr)


@dataclasses.dataclass
class Trainer:
    """What the loop works with besides its state: settings, devices, and where results go."""

    config: TrainConfig
    dist: Distributed
    runtime: Runtime
    state: TrainState
    model: torch.nn.Module  # what the step calls: the state's model, maybe compiled and wrapped in DDP
    grad_accum: int  # micro-batches per optimizer step on this rank
    scaler: torch.amp.GradScaler  # float16's loss scaling; a no-op otherwise
    results: RunRecords
    log: callable
    tracked_iter: int = -1  # the iteration whose step runs under the memory tracker
    step_ms: list[float] = dataclasses.field(default_factory=list)
    started: float = 0.0

    @property
    def out_dir(self) -> Path:
        return Path(self.config.out_dir)

    @property
    def tokens_per_iter(self) -> int:
        return self.grad_accum * self.dist.world_size * self.config.batch_size * self.config.block_size


# ----------------------------------------------------------------------------- the loop

def run_loop(t: Trainer) -> dict:
    state, config = t.state, t.config
    t.started, status = time.time(), "finished"
    if state.iter_num >= config.max_iters and not config.eval_only:
        t.log(f"the checkpoint is at iter {state.iter_num}, not before max_iters={config.max_iters}: nothing to train")
    with stop_on_signals() as stop:
        while True:
            if evaluation_due(t):
                evaluate_and_checkpoint(t)
            if state.iter_num >= config.max_iters or config.eval_only:
                break

            lr = set_learning_rate(state.optimizer, get_lr(state.iter_num, config))
            t0 = time.perf_counter()
            loss, step_memory = train_step(t, stop, track=state.iter_num == t.tracked_iter)
            dt_ms = (time.perf_counter() - t0) * 1000
            state.iter_num += 1
            t.step_ms.append(dt_ms)

            if len(t.step_ms) == 1:
                report_optimizer_state(t)
            if step_memory is not None:
                report_step_memory(t, step_memory)
            if (state.iter_num - 1) % config.log_interval == 0:
                log_iteration(t, loss, lr, dt_ms)
            if stop["requested"]:
                save(state, config, t.dist, t.out_dir / "ckpt.pt", eval_done=False)
                t.log(f"interrupted at iter {state.iter_num}: checkpoint written to {t.out_dir / 'ckpt.pt'}; "
                      "continue with --init_from=resume")
                status = "interrupted"
                break
    return finish(t, status)


# ----------------------------------------------------------------------------- the loop's steps

def evaluation_due(t: Trainer) -> bool:
    it, config = t.state.iter_num, t.config
    due = it % config.eval_interval == 0 or it == config.max_iters or config.eval_only
    return due and it != t.state.evaluated_at


def evaluate_and_checkpoint(t: Trainer) -> None:
    """nanoGPT's evaluation: both splits' mean loss; a checkpoint when it improved (or always)."""
    state, config = t.state, t.config
    samplers = {"train": state.samplers["eval_train"], "val": state.samplers["eval_val"]}
    losses = estimate_loss(t.model, samplers, config.eval_iters, t.runtime, t.dist)
    t.log(f"step {state.iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
    if not (math.isfinite(losses["train"]) and math.isfinite(losses["val"])):
        raise TrainingError(f"the evaluation at iter {state.iter_num} gave a non-finite loss; training stopped "
                            f"without saving (the last checkpoint in {t.out_dir} is intact)")
    improved = losses["val"] < state.best_val_loss
    if improved:
        state.best_val_loss, state.best_iter = losses["val"], state.iter_num
    t.results.record("eval", iter=state.iter_num, train_loss=losses["train"], val_loss=losses["val"],
                     lr=get_lr(state.iter_num, config))
    if state.iter_num > 0 and (improved or config.always_save_checkpoint or state.iter_num == config.max_iters):
        save(state, config, t.dist, t.out_dir / "ckpt.pt", eval_done=True)
        if improved:
            save(state, config, t.dist, t.out_dir / "best.pt", eval_done=True)


@torch.no_grad()
def estimate_loss(model, samplers: dict[str, BatchSampler], eval_iters: int, runtime, dist: Distributed) -> dict:
    model.eval()
    out = {}
    for split, sampler in samplers.items():
        total = 0.0
        for _ in range(eval_iters):
            x, y = (t.to(runtime.device) for t in sampler.next_batch())
            with runtime.autocast():
                _, loss = model(x, y)
            total += loss.item()
        out[split] = dist.mean(total / eval_iters, runtime.device)
    model.train()
    return out


def set_learning_rate(optimizer, lr: float) -> float:
    for group in optimizer.param_groups:
        if torch.is_tensor(group["lr"]):  # torchao keeps lr as a tensor, so its compiled step never recompiles
            group["lr"].fill_(lr * group.get("lr_scale", 1.0))
        else:
            group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr


def train_step(t: Trainer, stop: dict, track: bool = False):
    """One optimizer step; every rank agrees on the loss and on whether to stop. Returns the loss
    and, with `track`, the step's memory breakdown (else None)."""
    state = t.state
    optimizer = state.optimizer.optim if t.config.zero else state.optimizer  # ZeRO: this rank's share
    tracker = MemoryTracker(list(state.model.parameters()), optimizer) if track else None
    with tracker or contextlib.nullcontext():
        phase = tracker.phase if tracker else (lambda _: None)
        loss = forward_backward(t.model, state.samplers["train"].next_batch, t.grad_accum, t.runtime, t.scaler,
                                ddp=t.dist.enabled, phase=phase, optimizer=state.optimizer,
                                grad_clip=t.config.grad_clip).item()
        if t.dist.enabled:  # one collective: every rank must agree to stop, for a fault or Ctrl-C
            flags = torch.tensor([loss, float(stop["requested"])], dtype=torch.float64, device=t.runtime.device)
            torch.distributed.all_reduce(flags)
            loss, stop["requested"] = flags[0].item() / t.dist.world_size, flags[1].item() > 0
        if not math.isfinite(loss):
            state.optimizer.zero_grad(set_to_none=True)
            raise TrainingError(f"loss is {loss} at iter {state.iter_num}; training stopped "
                                f"(the last checkpoint in {t.out_dir} is intact)")
        optimizer_update(t.model, state.optimizer, t.scaler, t.config.grad_clip, phase=phase)
        phase("done")
    return loss, tracker.breakdown() if tracker else None


def report_optimizer_state(t: Trainer) -> None:
    """Once per run, after the first step (when every optimizer's state exists): its bytes."""
    opt_bytes = state_bytes(t.state.optimizer)
    per_rank = t.dist.gather(opt_bytes)
    baseline = adamw_state_bytes(t.state.model)
    kv_bytes = t.state.model.config.kv_cache_bytes_per_token()  # float32
    t.log(f"optimizer state: {opt_bytes / 2**20:.3f} MiB ({opt_bytes:,} bytes), "
          f"{opt_bytes / baseline:.3f}x AdamW's {baseline:,}; KV cache {kv_bytes:,} bytes/token"
          + (f"; per rank: {', '.join(f'{b:,}' for b in per_rank)}" if t.dist.enabled else ""))
    t.results.record("memory", iter=t.state.iter_num, params=t.state.model.num_params(),
                     optimizer_state_bytes=opt_bytes, adamw_state_bytes=baseline,
                     optimizer_state_ratio=opt_bytes / baseline, kv_cache_bytes_per_token=kv_bytes,
                     optimizer_state_bytes_per_rank=per_rank)


def report_step_memory(t: Trainer, b) -> None:
    iteration = t.state.iter_num - 1
    parts = [f"{name.replace('_', ' ')} {format_bytes(getattr(b, name))}"
             for name in ("params", "grads", "optimizer_state", "activations", "temporaries")]
    t.log(f"step memory (iter {iteration}, tensors alive at the peak): {format_bytes(b.peak)} = "
          f"{' + '.join(parts)}; peak in {b.peak_phase}; saved for backward {format_bytes(b.activations_saved)}")
    t.results.record("step_memory", iter=iteration, **b.as_dict())


def log_iteration(t: Trainer, loss: float, lr: float, dt_ms: float) -> None:
    it = t.state.iter_num - 1
    eta = statistics.median(t.step_ms[-50:]) / 1000 * (t.config.max_iters - t.state.iter_num)
    t.log(f"iter {it}: loss {loss:.4f}, time {dt_ms:.2f}ms, lr {lr:.2e}, eta {format_duration(eta)}")
    t.results.record("train", iter=it, loss=loss, lr=lr, ms=dt_ms, tokens_per_s=t.tokens_per_iter / (dt_ms / 1000))


def finish(t: Trainer, status: str) -> dict:
    """The run's end record (wall time, speed, memory high-water marks); returns the results."""
    median_ms = statistics.median(t.step_ms) if t.step_ms else None
    cuda = t.runtime.device_type == "cuda"
    t.results.record("end", iter=t.state.iter_num, status=status, wall_s=time.time() - t.started,
                     best_val_loss=t.state.best_val_loss, best_iter=t.state.best_iter,
                     median_ms_per_iter=median_ms,
                     tokens_per_s=t.tokens_per_iter / median_ms * 1000 if median_ms else None,
                     max_rss_bytes=max_rss_bytes(),
                     cuda_max_allocated_bytes=torch.cuda.max_memory_allocated() if cuda else None)
    t.results.close()
    return t.results.summary()


def max_rss_bytes() -> int:
    """The resident memory of the whole process at its largest (torch's own libraries included)."""
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB on Linux


@contextmanager
def stop_on_signals():
    """The first Ctrl-C or SIGTERM (Slurm preemption, `docker stop`, `timeout`) asks the loop to
    checkpoint and stop; a second one stops at once."""
    state = {"requested": False}

    def handler(signum, frame):
        if state["requested"]:
            raise KeyboardInterrupt
        state["requested"] = True

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield state
        return
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ----------------------------------------------------------------------------- setting up

def train(config: TrainConfig, log=print) -> dict:
    """Run one training job; return its final numbers. `log` receives every console line."""
    config.validate()
    dist, device = setup_distributed(config)
    try:
        # rank 0 alone writes out_dir, so it alone holds the lock
        with directory_lock(config.out_dir) if dist.master else contextlib.nullcontext():
            result = run_loop(setup(config, dist, device, log if dist.master else (lambda *_: None)))
        if dist.enabled:  # no rank tears its connections down while another still works (gloo aborts)
            torch.distributed.barrier()
        return result
    except RuntimeError as exc:  # torch.distributed.DistError is a RuntimeError
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not dist.enabled or not is_communication_error(exc):
            raise
        raise TrainingError(f"rank {dist.rank} lost contact with the other ranks ({message[:300]}); "
                            f"a rank stopped or hung for over dist_timeout={config.dist_timeout:g}s") from None
    finally:
        if dist.enabled:
            torch.distributed.destroy_process_group()


def setup(config: TrainConfig, dist: Distributed, device: str, log) -> Trainer:
    """Device, data, model and optimizer (from the checkpoint when resuming), the step's wrappers,
    and the run's files."""
    runtime = resolve(device, config.dtype)
    if config.compile:
        check_compile(runtime.device_type)
    if config.optimizer_in_backward:
        _check_in_backward(dist, runtime)
    grad_accum = _micro_batches_per_rank(config, dist)
    paths = dataset_paths(config.data_dir, config.dataset)
    meta = load_meta(paths["meta"])
    torch.manual_seed(config.seed + dist.rank)

    load_variant(config.optimizer_variant)  # a missing library fails here, before any work
    ckpt_path = Path(config.out_dir) / "ckpt.pt"
    ckpt = checkpoint.load(ckpt_path) if config.init_from == "resume" else None
    model, config = build_model(config, ckpt, ckpt_path, meta, log)
    _log_setting_notes(config, ckpt, dist, log)
    model.to(runtime.device)
    if config.zero and not dist.enabled:
        raise ConfigError("zero=True shards optimizer state across processes: launch with torchrun and >= 2 processes")
    state = TrainState(model, build_optimizer(model, config, zero=config.zero),
                       new_samplers(paths, config, dist.rank, dist.world_size, meta["vocab_size"]), meta)
    if ckpt is not None:
        restore(state, ckpt, ckpt_path, config, dist.rank, dist.world_size, log)
    del ckpt  # free the loaded tensors

    model.activation_checkpointing = config.activation_checkpointing
    model.loss_chunk_size = config.loss_chunk_size if config.chunked_loss else 0
    step_model = model
    if config.compile:
        log("compiling the model... (takes a while the first time)")
        step_model = torch.compile(model)
    if dist.enabled:
        # the gradients are views into DDP's all-reduce buckets: no second gradient-sized buffer
        step_model = DDP(step_model, device_ids=[dist.local_rank] if runtime.device_type == "cuda" else None,
                         gradient_as_bucket_view=True)
    scaler = torch.amp.GradScaler(enabled=runtime.dtype == "float16")
    records = RunRecords(_open_metrics(config, dist, runtime, model))
    t = Trainer(config, dist, runtime, state, step_model, grad_accum, scaler, records, log)
    log(f"number of parameters: {model.num_params() / 1e6:.2f}M; tokens per iteration: {t.tokens_per_iter:,}; "
        f"device {runtime.device}, dtype {runtime.dtype}, optimizer {config.optimizer_variant}")
    t.tracked_iter = _tracked_iteration(config, state.iter_num, log)
    return t


def _check_in_backward(dist: Distributed, runtime: Runtime) -> None:
    """What only the launch and the device tell (the config refused the rest)."""
    if dist.enabled:
        raise ConfigError("optimizer_in_backward=True would step each weight before DDP averages its gradient "
                          "across ranks: run it in one process, or pass --optimizer_in_backward=False")
    if runtime.dtype == "float16":
        raise ConfigError("optimizer_in_backward=True cannot run float16's loss scaling (dtype=auto picks float16 "
                          "on this GPU): pass --dtype=bfloat16 or --dtype=float32")


def _micro_batches_per_rank(config: TrainConfig, dist: Distributed) -> int:
    grad_accum = config.gradient_accumulation_steps
    if grad_accum % dist.world_size:
        raise ConfigError(f"gradient_accumulation_steps={grad_accum} must be divisible by the world size "
                          f"{dist.world_size} (it counts the micro-batches of all ranks together): pass "
                          f"--gradient_accumulation_steps={dist.world_size * max(1, round(grad_accum / dist.world_size))}")
    return grad_accum // dist.world_size


def _log_setting_notes(config: TrainConfig, ckpt: dict | None, dist: Distributed, log) -> None:
    """One line for each setting worth a second look before the run starts."""
    if tuned_lr_hint(config):
        log(tuned_lr_hint(config))
    if config.decay_lr and config.lr_decay_iters <= config.warmup_iters:
        log(f"note: lr_decay_iters={config.lr_decay_iters} <= warmup_iters={config.warmup_iters}: the learning rate "
            f"warms up for {config.warmup_iters} iterations, then stays at min_lr (as in nanoGPT)")
    if ckpt is not None:
        for line in resume_changes(ckpt.get("config") or {}, config):
            log(line)
    elif dist.master:
        ckpt_path = Path(config.out_dir) / "ckpt.pt"
        replaced = other_configuration(ckpt_path, config)
        if replaced:
            log(f"note: {ckpt_path} holds a run with {replaced}; this scratch run replaces it at its "
                f"first save (pass another --out_dir to keep it)")


def _open_metrics(config: TrainConfig, dist: Distributed, runtime: Runtime, model) -> MetricsLogger | None:
    """config.json and metrics.jsonl in out_dir, written by rank 0 alone."""
    if not dist.master:
        return None
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resolved = {**dataclasses.asdict(config), "device": runtime.device, "dtype": runtime.dtype,
                "world_size": dist.world_size, "model_args": dataclasses.asdict(model.config)}
    atomic_write_json(out_dir / "config.json", resolved)
    wandb = ({"project": config.wandb_project, "name": config.wandb_run_name, "config": resolved}
             if config.wandb_log else None)
    return MetricsLogger(out_dir, tensorboard=config.tensorboard, wandb_config=wandb)


def _tracked_iteration(config: TrainConfig, first_iter: int, log) -> int:
    """The iteration whose step the memory tracker follows: this process's second, the first whose
    optimizer state exists throughout (every later step's steady state); -1 where it cannot see."""
    if config.compile:
        log("step memory: not tracked under compile=True; `leangpt memory` with the same keys estimates the eager step")
        return -1
    if config.optimizer_variant in COMPILED_STEP_VARIANTS:
        log(f"step memory: not tracked: {config.optimizer_variant}'s step is compiled, which the tracker cannot see into")
        return -1
    return first_iter + 1
