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
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from . import checkpoint, sharded_checkpoint
from .checks import other_configuration, resume_changes, setting_notes
from .config import TrainConfig
from .data import BatchSampler, dataset_paths, load_dataset_meta
from .pretrained import is_pretrained
from .device import Runtime, check_compile, resolve
from .distributed import Distributed, is_communication_error, setup_distributed
from .errors import ConfigError, first_line
from .fileio import atomic_write_json, directory_lock
from .formatting import format_bytes, format_duration
from .fsdp import shard_model, uses_mixed_precision_policy
from .memtrack import MemoryTracker, zero_grads_note
from .metrics import MetricsLogger, RunRecords
from .optim import COMPILED_STEP_VARIANTS, adamw_state_bytes, build_optimizer, load_variant, state_bytes
from .step import forward_backward, optimizer_update
from .trainstate import (TrainingError, TrainState, apply_current_settings, build_model, check_optimizer_variant,
                         new_samplers, restore, save)

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
    compiling: threading.Event = dataclasses.field(default_factory=threading.Event)  # set once the first step is done

    @property
    def out_dir(self) -> Path:
        return Path(self.config.out_dir)

    @property
    def tokens_per_iter(self) -> int:
        return self.grad_accum * self.dist.world_size * self.config.batch_size * self.config.block_size


# ----------------------------------------------------------------------------- the loop

def run_loop(t: Trainer, stop: dict) -> dict:
    state, config = t.state, t.config
    t.started, status = time.time(), "finished"
    if state.iter_num >= config.max_iters and not config.eval_only:
        t.log(f"the checkpoint is at iter {state.iter_num}, not before max_iters={config.max_iters}: nothing to train")
    with _until_done(t.compiling):
        while True:
            if evaluation_due(t) and not evaluate_and_checkpoint(t, stop):
                status = interrupt(t)
                break
            if state.iter_num >= config.max_iters or config.eval_only:
                break

            lr = set_learning_rate(state.optimizer, get_lr(state.iter_num, config))
            t0 = time.perf_counter()
            step = train_step(t, stop, track=state.iter_num == t.tracked_iter)
            if step is None:  # stopped between micro-batches: the iteration is undone
                status = interrupt(t)
                break
            loss, step_memory, stopping = step
            stop["at_once"] = False
            t.compiling.set()  # the first step is done: whatever it compiled is compiled
            dt_ms = (time.perf_counter() - t0) * 1000
            state.iter_num += 1
            t.step_ms.append(dt_ms)

            if len(t.step_ms) == 1:
                report_optimizer_state(t)
            if step_memory is not None:
                report_step_memory(t, step_memory)
            if (state.iter_num - 1) % config.log_interval == 0:
                log_iteration(t, loss, lr, dt_ms)
            # under torchrun only the value all ranks agreed on counts, never this rank's flag read again
            if stopping or (not t.dist.enabled and stop["requested"]):
                status = interrupt(t)
                break
    return finish(t, status)


@contextmanager
def _until_done(event: threading.Event):
    """Sets `event` however the block ends (it stops the compile heartbeat)."""
    try:
        yield
    finally:
        event.set()


# ----------------------------------------------------------------------------- the loop's steps

def interrupt(t: Trainer) -> str:
    """Checkpoint the state as of the last whole iteration and say how to continue."""
    path = t.out_dir / "ckpt.pt"
    save(t.state, t.config, t.dist, path, eval_done=False)
    written = sharded_checkpoint.sharded_path(path) if t.config.fsdp else path
    t.log(f"interrupted at iter {t.state.iter_num}: checkpoint written to {written}; "
          "continue with --init_from=resume")
    return "interrupted"


def stop_agreed(t: Trainer, stop: dict) -> bool:
    """Whether to stop now. Under torchrun the ranks agree in one all-reduce, so that a signal
    reaching one rank a moment later than another cannot send them into different collectives."""
    if not t.dist.enabled:
        return stop["requested"]
    flag = torch.tensor([float(stop["requested"])], dtype=torch.float64, device=t.runtime.device)
    torch.distributed.all_reduce(flag)
    return flag.item() > 0


def evaluation_due(t: Trainer) -> bool:
    it, config = t.state.iter_num, t.config
    due = it % config.eval_interval == 0 or it == config.max_iters or config.eval_only
    return due and it != t.state.evaluated_at


def evaluate_and_checkpoint(t: Trainer, stop: dict) -> bool:
    """nanoGPT's evaluation: both splits' mean loss; a checkpoint when it improved (or always).
    Returns False when a stop was asked for during it: the evaluation is then dropped unfinished
    (its samplers rewound), so the stop waits for one batch, not for the whole evaluation."""
    state, config = t.state, t.config
    samplers = {"train": state.samplers["eval_train"], "val": state.samplers["eval_val"]}
    before = {name: s.state_dict() for name, s in samplers.items()}
    losses = estimate_loss(t.model, samplers, config.eval_iters, t.runtime, t.dist,
                           should_stop=lambda: stop_agreed(t, stop))
    if losses is None:
        for name, s in samplers.items():
            s.load_state_dict(before[name])
        return False
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
    return True


@torch.no_grad()
def estimate_loss(model, samplers: dict[str, BatchSampler], eval_iters: int, runtime, dist: Distributed,
                  should_stop=lambda: False) -> dict | None:
    """Each split's mean loss over `eval_iters` batches, or None when `should_stop()` (asked
    before every batch) says to stop."""
    model.eval()
    out = {}
    try:
        for split, sampler in samplers.items():
            total = 0.0
            for _ in range(eval_iters):
                if should_stop():
                    return None
                x, y = (t.to(runtime.device) for t in sampler.next_batch())
                with runtime.autocast():
                    _, loss = model(x, y)
                total += loss.item()
            out[split] = dist.mean(total / eval_iters, runtime.device)
    finally:
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
    """One optimizer step; every rank agrees on the loss and on whether to stop. Returns the loss,
    with `track` the step's memory breakdown (else None), and whether to stop after this step;
    or None when a stop was asked for between micro-batches: the step is then undone (gradients
    dropped, data samplers and RNG rewound), so the checkpoint is the one of the step before."""
    state = t.state
    optimizer = state.optimizer.optim if t.config.zero else state.optimizer  # ZeRO: this rank's share
    tracker = MemoryTracker(list(state.model.parameters()), optimizer) if track else None
    sampler = state.samplers["train"]
    # only a step of several micro-batches can stop halfway; it is rewound from this
    before = (sampler.state_dict(), checkpoint.rng_state()) if t.grad_accum > 1 else None
    with tracker or contextlib.nullcontext():
        phase = tracker.phase if tracker else (lambda _: None)
        loss = forward_backward(t.model, sampler.next_batch, t.grad_accum, t.runtime, t.scaler,
                                ddp=t.dist.enabled and not t.config.fsdp, phase=phase, optimizer=state.optimizer,
                                grad_clip=t.config.grad_clip, should_stop=lambda: stop_agreed(t, stop))
        if loss is None:
            state.optimizer.zero_grad(set_to_none=True)
            sampler.load_state_dict(before[0])
            checkpoint.set_rng_state(before[1])
            return None
        loss, stopping = loss.item(), stop["requested"]
        if t.dist.enabled:  # one collective: every rank must agree to stop, for a fault or Ctrl-C
            flags = torch.tensor([loss, float(stopping)], dtype=torch.float64, device=t.runtime.device)
            torch.distributed.all_reduce(flags)
            loss, stopping = flags[0].item() / t.dist.world_size, flags[1].item() > 0
        if not math.isfinite(loss):
            state.optimizer.zero_grad(set_to_none=True)
            raise TrainingError(f"loss is {loss} at iter {state.iter_num}; training stopped "
                                f"(the last checkpoint in {t.out_dir} is intact)")
        optimizer_update(t.model, state.optimizer, t.scaler, t.config.grad_clip, phase=phase)
        phase("done")
    return loss, tracker.breakdown() if tracker else None, stopping


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
                     optimizer_state_bytes_per_rank=per_rank, **tokens_per_character(t.state))


def tokens_per_character(state) -> dict:
    """The dataset's tokenizer and its val split's characters per token, which turn a loss per
    token into one per character (a loss of a character model and of a BPE model compare only so)."""
    kind = state.meta.get("tokenizer", "char")
    if kind == "char":
        return {"tokenizer": kind, "val_chars_per_token": 1.0}
    chars = (state.meta.get("characters") or {}).get("val")  # None for nanoGPT's data, which records none
    return {"tokenizer": kind, "val_chars_per_token": chars / state.samplers["eval_val"].n_tokens if chars else None}


def report_step_memory(t: Trainer, b) -> None:
    iteration = t.state.iter_num - 1
    parts = [f"{name.replace('_', ' ')} {format_bytes(getattr(b, name))}"
             for name in ("params", "grads", "optimizer_state", "activations", "temporaries")]
    note = zero_grads_note(b.grads, b.peak_phase, t.config.optimizer_in_backward)
    t.log(f"step memory (iter {iteration}, tensors alive at the peak): {format_bytes(b.peak)} = "
          f"{' + '.join(parts)}; peak in {b.peak_phase}; saved for backward {format_bytes(b.activations_saved)}"
          + (f" ({note})" if note else ""))
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
    checkpoint and stop; a second one stops at once. Until the first step is done (`at_once`: while
    torch.compile compiles, which can take many minutes on a CPU) the first one stops at once too:
    nothing has been trained that a checkpoint would keep."""
    state = {"requested": False, "at_once": True}

    def handler(signum, frame):
        if state["requested"] or state["at_once"]:
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
        with directory_lock(config.out_dir) if dist.master else contextlib.nullcontext(), stop_on_signals() as stop:
            result = run_loop(setup(config, dist, device, log if dist.master else (lambda *_: None)), stop)
        if dist.group:  # no rank tears its connections down while another still works (gloo aborts)
            torch.distributed.barrier()
        return result
    except RuntimeError as exc:  # torch.distributed.DistError is a RuntimeError
        if not dist.enabled or not is_communication_error(exc):
            raise
        raise TrainingError(f"rank {dist.rank} lost contact with the other ranks ({first_line(exc)}); "
                            f"a rank stopped or hung for over dist_timeout={config.dist_timeout:g}s") from None
    finally:
        if dist.group:
            torch.distributed.destroy_process_group()


def setup(config: TrainConfig, dist: Distributed, device: str, log) -> Trainer:
    """Device, data, model and optimizer (from the checkpoint when resuming), the step's wrappers,
    and the run's files."""
    runtime = resolve(device, config.dtype)
    if config.fsdp:
        runtime = _check_fsdp(dist, runtime)
    if config.compile:
        check_compile(runtime.device_type)
    if config.optimizer_in_backward:
        _check_in_backward(dist, runtime)
    grad_accum = _micro_batches_per_rank(config, dist)
    paths = dataset_paths(config.data_dir, config.dataset)
    meta = load_dataset_meta(paths)
    if not paths["meta"].is_file():
        log(f"dataset {config.dataset!r} has no meta.pkl: read as nanoGPT's GPT-2 data (uint16 ids, vocab_size 50304)")
    if is_pretrained(config.init_from) and meta.get("tokenizer", "char") != "gpt2":
        raise ConfigError(f"init_from={config.init_from!r} loads GPT-2 weights, which read GPT-2 token ids, but dataset "
                          f"{config.dataset!r} is {meta.get('tokenizer', 'char')}-tokenized: prepare it with "
                          "leangpt prepare --tokenizer=gpt2")
    # FSDP keeps each rank's own shard of the weights it was built with (DDP broadcasts rank 0's):
    # every rank then builds the model from the same seed, and draws dropout from its own below
    torch.manual_seed(config.seed + (0 if config.fsdp else dist.rank))

    load_variant(config.optimizer_variant)  # a missing library fails here, before any work
    # the data can refuse a block_size at once, before a model that size is built (on resume the
    # checkpoint's architecture decides it, so they are made after the model)
    samplers = new_samplers(paths, config, dist.rank, dist.world_size, meta) \
        if config.init_from == "scratch" else None  # GPT-2 weights: after the model, whose vocabulary bounds the ids
    ckpt_path = Path(config.out_dir) / "ckpt.pt"
    ckpt = sharded_dir = None
    if config.init_from == "resume" and config.fsdp:
        sharded_dir, ckpt = sharded_checkpoint.open_sharded(ckpt_path)
    elif config.init_from == "resume":
        ckpt = checkpoint.load(ckpt_path)
    model, config = build_model(config, ckpt, ckpt_path, meta, log)
    _log_setting_notes(config, ckpt, dist, log)
    model.to(runtime.device)
    if config.zero and not dist.enabled:
        raise ConfigError("zero=True shards optimizer state across processes: launch with torchrun and >= 2 processes")
    if config.fsdp:  # before the optimizer: one built over the unsharded weights would train nothing
        shard_model(model, runtime)
        torch.manual_seed(config.seed + dist.rank)
    state = TrainState(model, build_optimizer(model, config, zero=config.zero),
                       samplers or new_samplers(paths, config, dist.rank, dist.world_size, meta,
                                                model.config.vocab_size), meta)
    if ckpt is not None and config.fsdp:
        check_optimizer_variant(ckpt, config)
        sharded_checkpoint.load_sharded(model, state.optimizer, sharded_dir, ckpt)
        apply_current_settings(state.optimizer, config, model)
    if ckpt is not None:
        restore(state, ckpt, ckpt_path, config, dist.rank, dist.world_size, log)
    del ckpt  # free the loaded tensors

    model.activation_checkpointing = config.activation_checkpointing
    model.loss_chunk_size = config.loss_chunk_size if config.chunked_loss else 0
    step_model = model
    if config.compile:
        log("compiling the model... (takes a while the first time)" + (
            "; on a CPU that can be many minutes before the first step, and nanoGPT's own advice for CPUs is "
            "--compile=False (Ctrl-C stops at once until the first step is done)" if runtime.device_type == "cpu" else ""))
        step_model = torch.compile(model)
    if dist.enabled and not config.fsdp:
        # the gradients are views into DDP's all-reduce buckets: no second gradient-sized buffer
        step_model = DDP(step_model, device_ids=[dist.local_rank] if runtime.device_type == "cuda" else None,
                         gradient_as_bucket_view=True)
    scaler = torch.amp.GradScaler(enabled=runtime.dtype == "float16")
    records = RunRecords(_open_metrics(config, dist, runtime, model))
    t = Trainer(config, dist, runtime, state, step_model, grad_accum, scaler, records, log)
    log(f"number of parameters: {model.num_params() / 1e6:.2f}M; tokens per iteration: {t.tokens_per_iter:,}; "
        f"device {runtime.device}, dtype {runtime.dtype}, optimizer {config.optimizer_variant}")
    t.tracked_iter = _tracked_iteration(config, state.iter_num, log)
    if config.compile:
        heartbeat(t.compiling, log, "still compiling (the first evaluation and step wait for it)")
    return t


def heartbeat(done: threading.Event, log, what: str, every_s: float = 30.0) -> None:
    """A line every `every_s` seconds until `done` is set, so a long silent wait shows it is alive."""
    started = time.time()

    def beat():
        while not done.wait(every_s):
            log(f"{what}: {format_duration(time.time() - started)} so far")

    threading.Thread(target=beat, daemon=True, name="leangpt-heartbeat").start()


def _check_fsdp(dist: Distributed, runtime: Runtime) -> Runtime:
    """What only the launch and the device tell (the config refused the rest); the runtime that
    lets FSDP2's mixed-precision policy, not autocast, cast the weights where it applies."""
    if not dist.group:
        raise ConfigError("fsdp=True shards the model across the processes torchrun starts: launch with "
                          "torchrun --standalone --nproc_per_node=N train.py ... (N may be 1)")
    if runtime.dtype == "float16":
        raise ConfigError("fsdp=True cannot run float16's loss scaling (dtype=auto picks float16 on this GPU): "
                          "pass --dtype=bfloat16 or --dtype=float32")
    return dataclasses.replace(runtime, weights_cast=uses_mixed_precision_policy(runtime))


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
    for note in setting_notes(config):
        log(note)
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
