"""The training loop: nanoGPT's, with exact resume, atomic checkpoints and a clean stop on faults.

Read `train()` top to bottom: set up (device, data, model, optimizer, maybe from a checkpoint),
then loop: evaluate every eval_interval iterations, take one optimizer step of
gradient_accumulation_steps micro-batches, log. Checkpoints hold every RNG state, so a run
stopped at iteration N and resumed prints the same losses as one that never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from . import checkpoint
from .checkpoint import CheckpointError
from .checks import ARCHITECTURE_KEYS, other_configuration, resume_changes, tuned_lr_hint
from .config import ConfigError, LeanGPTError, TrainConfig
from .data import BatchSampler, dataset_paths, load_meta
from .device import auto_device, check_compile, resolve
from .fileio import atomic_write_json, directory_lock
from .metrics import MetricsLogger
from .model import GPT, GPTConfig
from .memtrack import MemoryTracker, format_bytes
from .optim import COMPILED_STEP_VARIANTS, adamw_state_bytes, build_optimizer, load_variant, optimizer_spec, state_bytes
from .step import forward_backward, optimizer_update



class TrainingError(LeanGPTError):
    """Training cannot go on (a non-finite loss, for instance)."""


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
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def master(self) -> bool:
        return self.rank == 0

    def mean(self, value: float, device: str) -> float:
        """The average of a scalar over ranks (the loss every rank would report together)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return t.item() / self.world_size


def setup_distributed(config: TrainConfig) -> tuple[Distributed, str]:
    """Join the process group when launched by torchrun; return it and the device to use."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
        return Distributed(), config.device
    dist = Distributed(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]))
    use_cuda = (auto_device() if config.device == "auto" else config.device).startswith("cuda")
    backend = config.backend if config.backend != "auto" else ("nccl" if use_cuda else "gloo")
    device = config.device
    if use_cuda:
        device = f"cuda:{dist.local_rank}"
        torch.cuda.set_device(device)
    import datetime
    torch.distributed.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=config.dist_timeout))
    return dist, device


@contextmanager
def stop_on_sigint():
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


@torch.no_grad()
def estimate_loss(model, samplers: dict[str, BatchSampler], eval_iters: int, runtime, dist: Distributed) -> dict[str, float]:
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


def model_config_from(config: TrainConfig, vocab_size: int) -> GPTConfig:
    """The model a training config describes, for a dataset of `vocab_size` tokens."""
    return GPTConfig(block_size=config.block_size, vocab_size=vocab_size, n_layer=config.n_layer,
                     n_head=config.n_head, n_embd=config.n_embd, dropout=config.dropout, bias=config.bias,
                     n_headgroup=config.n_headgroup, attn_impl=config.attn_impl)


def max_rss_bytes() -> int:
    """The resident memory of the whole process at its largest (torch's own libraries included)."""
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB on Linux


def _step_tracker(model, optimizer, config: TrainConfig) -> MemoryTracker:
    """Tracks this process's tensors (ZeRO: this rank's share of the optimizer state)."""
    return MemoryTracker(list(model.parameters()), optimizer.optim if config.zero else optimizer)


def describe_step_memory(b, iteration: int) -> str:
    parts = [f"{name.replace('_', ' ')} {format_bytes(getattr(b, name))}"
             for name in ("params", "grads", "optimizer_state", "activations", "temporaries")]
    return (f"step memory (iter {iteration}, tensors alive at the peak): {format_bytes(b.peak)} = "
            f"{' + '.join(parts)}; peak in {b.peak_phase}; saved for backward {format_bytes(b.activations_saved)}")


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _build_model(config: TrainConfig, ckpt: dict | None, ckpt_path: Path, meta: dict, log) -> tuple[GPT, TrainConfig]:
    """A fresh model, or the checkpoint's: then its architecture wins over the config's."""
    vocab_size = meta["vocab_size"]
    if ckpt is None:
        return GPT(model_config_from(config, vocab_size)), config
    saved = checkpoint.model_config(ckpt, ckpt_path)
    if saved.vocab_size != vocab_size:
        raise CheckpointError(f"{ckpt_path} has vocab_size={saved.vocab_size} but dataset "
                              f"{config.dataset!r} has {vocab_size}")
    saved_stoi = (ckpt.get("meta") or {}).get("stoi")
    if saved_stoi is not None and saved_stoi != meta["stoi"]:
        differ = sum(saved_stoi.get(ch) != i for ch, i in meta["stoi"].items())
        raise CheckpointError(f"{ckpt_path} was trained on another vocabulary than dataset {config.dataset!r} "
                              f"({differ} of its {vocab_size} characters have other ids)")
    changed = [k for k in ARCHITECTURE_KEYS if k != "vocab_size" and getattr(saved, k) != getattr(config, k)]
    if changed:
        log("resuming with the checkpoint's architecture: " + ", ".join(f"{k}={getattr(saved, k)}" for k in changed))
    config = dataclasses.replace(config, **{k: getattr(saved, k) for k in ARCHITECTURE_KEYS if k != "vocab_size"})
    return checkpoint.load_model(ckpt, ckpt_path, dropout=config.dropout, attn_impl=config.attn_impl), config


def _resume_counters(ckpt: dict, path: Path) -> tuple[int, float]:
    try:
        iter_num, best = ckpt.get("iter_num", 0), ckpt.get("best_val_loss", 1e9)
        if isinstance(iter_num, bool) or not isinstance(iter_num, int) or iter_num < 0:
            raise ValueError(f"iter_num={iter_num!r}")
        return iter_num, float(best)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has an invalid counter: {exc}") from None


def _restore_optimizer(optimizer, ckpt: dict, config: TrainConfig, model: GPT) -> None:
    """The checkpoint's moments, with the hyper-parameters the command line gives now (betas, eps,
    weight decay, ...: load_state_dict would bring back the checkpoint's; resume_changes names them)."""
    saved_variant = (ckpt.get("config") or {}).get("optimizer_variant", "adamw")
    if saved_variant != config.optimizer_variant:
        raise CheckpointError(f"the checkpoint's optimizer state is {saved_variant}, not optimizer_variant="
                              f"{config.optimizer_variant}; resume with --optimizer_variant={saved_variant}")
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"the checkpoint's optimizer state does not fit this model: {exc}") from None
    cls, groups, kwargs = optimizer_spec(model, config)
    fresh = cls(groups, **kwargs)  # holds no state yet: read for the settings each group gets now
    for group, fresh_group in zip(optimizer.param_groups, fresh.param_groups):
        # lr comes from the schedule; "step" is a step counter some optimizers keep per group
        group.update({k: v for k, v in fresh_group.items() if k not in ("params", "lr", "step")})


def train(config: TrainConfig, log=print) -> dict:
    """Run one training job; return its final numbers. `log` receives every console line."""
    config.validate()
    dist, device = setup_distributed(config)
    try:
        # rank 0 alone writes out_dir, so it alone holds the lock
        with directory_lock(config.out_dir) if dist.master else contextlib.nullcontext():
            result = _train(config, dist, device, log if dist.master else (lambda *_: None))
        if dist.enabled:  # no rank tears its connections down while another still works (gloo aborts)
            torch.distributed.barrier()
        return result
    except RuntimeError as exc:  # torch.distributed.DistError is a RuntimeError
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not dist.enabled or not _is_communication_error(exc):
            raise
        raise TrainingError(f"rank {dist.rank} lost contact with the other ranks ({message[:300]}); "
                            f"a rank stopped or hung for over dist_timeout={config.dist_timeout:g}s") from None
    finally:
        if dist.enabled:
            torch.distributed.destroy_process_group()


def _is_communication_error(exc: BaseException) -> bool:
    if isinstance(exc, getattr(torch.distributed, "DistError", ())):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("gloo", "nccl", "connection closed", "timed out", "connection reset"))


def _train(config: TrainConfig, dist: Distributed, device: str, log) -> dict:
    runtime = resolve(device, config.dtype)
    if config.compile:
        check_compile(runtime.device_type)
    out_dir = Path(config.out_dir)
    grad_accum = config.gradient_accumulation_steps
    if grad_accum % dist.world_size:
        raise ConfigError(f"gradient_accumulation_steps={grad_accum} must be divisible by the world size "
                          f"{dist.world_size} (it counts the micro-batches of all ranks together): pass "
                          f"--gradient_accumulation_steps={dist.world_size * max(1, round(grad_accum / dist.world_size))}")
    grad_accum //= dist.world_size

    paths = dataset_paths(config.data_dir, config.dataset)
    meta = load_meta(paths["meta"])
    vocab_size = meta["vocab_size"]
    torch.manual_seed(config.seed + dist.rank)

    # ---------------------------------------------------------------- model and optimizer
    load_variant(config.optimizer_variant)  # a missing library fails here, before any work
    ckpt = checkpoint.load(out_dir / "ckpt.pt") if config.init_from == "resume" else None
    model, config = _build_model(config, ckpt, out_dir / "ckpt.pt", meta, log)
    if tuned_lr_hint(config):
        log(tuned_lr_hint(config))
    if config.decay_lr and config.lr_decay_iters <= config.warmup_iters:
        log(f"note: lr_decay_iters={config.lr_decay_iters} <= warmup_iters={config.warmup_iters}: the learning rate "
            f"warms up for {config.warmup_iters} iterations, then stays at min_lr (as in nanoGPT)")
    if ckpt is not None:
        for line in resume_changes(ckpt.get("config") or {}, config):
            log(line)
    elif dist.master:
        replaced = other_configuration(out_dir / "ckpt.pt", config)
        if replaced:
            log(f"note: {out_dir / 'ckpt.pt'} holds a run with {replaced}; this scratch run replaces it at its "
                f"first save (pass another --out_dir to keep it)")
    model.to(runtime.device)
    model_config = model.config
    if config.zero and not dist.enabled:
        raise ConfigError("zero=True shards optimizer state across processes: launch with torchrun and >= 2 processes")
    optimizer = build_optimizer(model, config, zero=config.zero)
    if ckpt is not None and ckpt.get("optimizer") is not None:
        _restore_optimizer(optimizer, ckpt, config, model)
    scaler = torch.amp.GradScaler(enabled=runtime.dtype == "float16")

    iter_num, best_val_loss = _resume_counters(ckpt, out_dir / "ckpt.pt") if ckpt else (0, 1e9)
    # a resumed run has already evaluated at its iteration, unless it only evaluates
    skip_eval_at = iter_num if ckpt and ckpt.get("eval_done", True) and not config.eval_only else -1

    samplers = {
        name: BatchSampler(paths[split], config.block_size, config.batch_size, config.seed + offset, dist.rank,
                           dist.world_size, vocab_size)
        for name, split, offset in (("train", "train", 0), ("eval_train", "train", 1), ("eval_val", "val", 2))
    }
    if ckpt is not None:
        if "rng" in ckpt and "samplers" in ckpt:
            try:
                per_rank = ckpt.get("rng_per_rank") or [ckpt["rng"]]
                # each rank continues its own dropout stream when the world size is unchanged
                checkpoint.set_rng_state(per_rank[dist.rank] if len(per_rank) == dist.world_size else ckpt["rng"])
                for name, sampler in samplers.items():
                    sampler.load_state_dict(ckpt["samplers"][name])
            except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
                raise CheckpointError(f"{out_dir / 'ckpt.pt'} has unusable RNG or sampler state "
                                      f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        elif iter_num > 0:
            log("note: this checkpoint holds no RNG state (not written by leangpt); resume is not bit-exact")
    ckpt = None  # free the loaded tensors

    raw_model = model
    raw_model.activation_checkpointing = config.activation_checkpointing
    if config.compile:
        log("compiling the model... (takes a while the first time)")
        model = torch.compile(model)
    if dist.enabled:
        model = DDP(model, device_ids=[dist.local_rank] if runtime.device_type == "cuda" else None)

    # ---------------------------------------------------------------- run bookkeeping
    metrics = None
    if dist.master:
        out_dir.mkdir(parents=True, exist_ok=True)
        resolved = {**dataclasses.asdict(config), "device": runtime.device, "dtype": runtime.dtype,
                    "world_size": dist.world_size, "model_args": dataclasses.asdict(model_config)}
        atomic_write_json(out_dir / "config.json", resolved)
        wandb = ({"project": config.wandb_project, "name": config.wandb_run_name, "config": resolved}
                 if config.wandb_log else None)
        metrics = MetricsLogger(out_dir, tensorboard=config.tensorboard, wandb_config=wandb)
    n_params = raw_model.num_params()
    tokens_per_iter = grad_accum * dist.world_size * config.batch_size * config.block_size
    log(f"number of parameters: {n_params / 1e6:.2f}M; tokens per iteration: {tokens_per_iter:,}; "
        f"device {runtime.device}, dtype {runtime.dtype}, optimizer {config.optimizer_variant}")
    kv_bytes = model_config.kv_cache_bytes_per_token()  # float32

    def save(path_name: str, eval_done: bool) -> None:
        """Called on every rank: ZeRO's state and the ranks' RNG states are gathered to rank 0."""
        # every rank holds the same weights, so every rank stops here together, before a collective
        if not all(torch.isfinite(p).all() for p in raw_model.parameters()):
            raise TrainingError(f"the weights are not finite at iter {iter_num}; {path_name} was not written "
                                f"(the last checkpoint in {out_dir} is intact)")
        rng_per_rank = [checkpoint.rng_state()]
        if dist.enabled:
            rng_per_rank = [None] * dist.world_size
            torch.distributed.all_gather_object(rng_per_rank, checkpoint.rng_state())
        if config.zero:
            optimizer.consolidate_state_dict(to=0)
        if not dist.master:
            return
        payload = {
            "format": "leangpt-1",
            "model": raw_model.state_dict(),
            "optimizer": optimizer.state_dict(),
            **checkpoint.model_args(model_config),
            "config": dataclasses.asdict(config),
            "iter_num": iter_num,
            "best_val_loss": best_val_loss,
            "eval_done": eval_done,
            "rng": rng_per_rank[0],
            "rng_per_rank": rng_per_rank,
            "samplers": {name: s.state_dict() for name, s in samplers.items()},
            "meta": {"vocab_size": vocab_size, "stoi": meta["stoi"], "itos": meta["itos"]},
        }
        checkpoint.save_atomic(payload, out_dir / path_name)

    # ---------------------------------------------------------------- the loop
    result = {"status": "finished", "train_loss": None, "val_loss": None, "iter": iter_num}
    all_ms: list[float] = []
    memory_reported = False
    # the second step of this process is the first whose optimizer state exists throughout: the
    # steady state of every later step. Compiled kernels are not what the tracker would see.
    untracked = config.compile or config.optimizer_variant in COMPILED_STEP_VARIANTS
    tracked_iter = -1 if untracked else iter_num + 1
    if config.compile:
        log("step memory: not tracked under compile=True; `leangpt memory` with the same keys estimates the eager step")
    elif untracked:
        log(f"step memory: not tracked: {config.optimizer_variant}'s step is compiled, which the tracker cannot see into")
    started = time.time()
    if iter_num >= config.max_iters and not config.eval_only:
        log(f"the checkpoint is at iter {iter_num}, not before max_iters={config.max_iters}: nothing to train")
    with stop_on_sigint() as interrupt:
        while True:
            due = iter_num % config.eval_interval == 0 or iter_num == config.max_iters or config.eval_only
            if due and iter_num != skip_eval_at:
                losses = estimate_loss(model, {"train": samplers["eval_train"], "val": samplers["eval_val"]},
                                       config.eval_iters, runtime, dist)
                log(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
                if not (math.isfinite(losses["train"]) and math.isfinite(losses["val"])):
                    raise TrainingError(f"the evaluation at iter {iter_num} gave a non-finite loss; training stopped "
                                        f"without saving (the last checkpoint in {out_dir} is intact)")
                result.update(train_loss=losses["train"], val_loss=losses["val"], iter=iter_num)
                improved = losses["val"] < best_val_loss
                if improved:
                    best_val_loss = losses["val"]
                    result.update(best_val_loss=best_val_loss, best_iter=iter_num)
                if metrics:
                    metrics.log({"kind": "eval", "iter": iter_num, "train_loss": losses["train"],
                                 "val_loss": losses["val"], "lr": get_lr(iter_num, config)})
                if iter_num > 0 and (improved or config.always_save_checkpoint or iter_num == config.max_iters):
                    save("ckpt.pt", eval_done=True)
                    if improved:
                        save("best.pt", eval_done=True)
            if iter_num >= config.max_iters or config.eval_only:
                break

            lr = get_lr(iter_num, config)
            for group in optimizer.param_groups:
                if torch.is_tensor(group["lr"]):  # torchao keeps lr as a tensor, so its compiled step never recompiles
                    group["lr"].fill_(lr * group.get("lr_scale", 1.0))
                else:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
            t0 = time.perf_counter()
            tracker = _step_tracker(raw_model, optimizer, config) if iter_num == tracked_iter else None
            with tracker or contextlib.nullcontext():
                phase = tracker.phase if tracker else (lambda _: None)
                loss_sum = forward_backward(model, samplers["train"].next_batch, grad_accum, runtime, scaler,
                                            ddp=dist.enabled, phase=phase)
                loss_value = loss_sum.item()
                if dist.enabled:  # one collective: every rank must agree to stop, for a fault or Ctrl-C
                    flags = torch.tensor([loss_value, float(interrupt["requested"])], dtype=torch.float64,
                                         device=runtime.device)
                    torch.distributed.all_reduce(flags)
                    loss_value = flags[0].item() / dist.world_size
                    interrupt["requested"] = flags[1].item() > 0
                if not math.isfinite(loss_value):
                    optimizer.zero_grad(set_to_none=True)
                    raise TrainingError(f"loss is {loss_value} at iter {iter_num}; training stopped "
                                        f"(the last checkpoint in {out_dir} is intact)")
                optimizer_update(model, optimizer, scaler, config.grad_clip, phase=phase)
                phase("done")
            dt_ms = (time.perf_counter() - t0) * 1000
            iter_num += 1
            all_ms.append(dt_ms)

            if not memory_reported:
                memory_reported = True
                opt_bytes = state_bytes(optimizer)
                per_rank = [opt_bytes]
                if dist.enabled:
                    per_rank = [None] * dist.world_size
                    torch.distributed.all_gather_object(per_rank, opt_bytes)
                baseline = adamw_state_bytes(raw_model)
                log(f"optimizer state: {opt_bytes / 2**20:.3f} MiB ({opt_bytes:,} bytes), "
                    f"{opt_bytes / baseline:.3f}x AdamW's {baseline:,}; KV cache {kv_bytes:,} bytes/token"
                    + (f"; per rank: {', '.join(f'{b:,}' for b in per_rank)}" if dist.enabled else ""))
                result.update(params=n_params, optimizer_state_bytes=opt_bytes, adamw_state_bytes=baseline,
                              kv_cache_bytes_per_token=kv_bytes)
                if metrics:
                    metrics.log({"kind": "memory", "iter": iter_num, "params": n_params,
                                 "optimizer_state_bytes": opt_bytes, "adamw_state_bytes": baseline,
                                 "optimizer_state_ratio": opt_bytes / baseline, "kv_cache_bytes_per_token": kv_bytes,
                                 "optimizer_state_bytes_per_rank": per_rank})

            if tracker is not None:
                breakdown = tracker.breakdown()
                log(describe_step_memory(breakdown, iter_num - 1))
                result["step_memory"] = breakdown.as_dict()
                if metrics:
                    metrics.log({"kind": "step_memory", "iter": iter_num - 1, **breakdown.as_dict()})

            if (iter_num - 1) % config.log_interval == 0:
                eta = statistics.median(all_ms[-50:]) / 1000 * (config.max_iters - iter_num)
                log(f"iter {iter_num - 1}: loss {loss_value:.4f}, time {dt_ms:.2f}ms, "
                    f"lr {lr:.2e}, eta {format_duration(eta)}")
                if metrics:
                    metrics.log({"kind": "train", "iter": iter_num - 1, "loss": loss_value, "lr": lr,
                                 "ms": dt_ms, "tokens_per_s": tokens_per_iter / (dt_ms / 1000)})

            if interrupt["requested"]:
                save("ckpt.pt", eval_done=False)
                log(f"interrupted at iter {iter_num}: checkpoint written to {out_dir / 'ckpt.pt'}; "
                    "continue with --init_from=resume")
                result["status"] = "interrupted"
                break

    result.update(iter=iter_num, wall_s=time.time() - started, best_val_loss=best_val_loss,
                  median_ms_per_iter=statistics.median(all_ms) if all_ms else None,
                  max_rss_bytes=max_rss_bytes())
    if runtime.device_type == "cuda":
        result["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated()
    if metrics:
        metrics.log({"kind": "end", "iter": iter_num, "status": result["status"], "wall_s": result["wall_s"],
                     "median_ms_per_iter": result["median_ms_per_iter"],
                     "tokens_per_s": tokens_per_iter / result["median_ms_per_iter"] * 1000 if all_ms else None,
                     "max_rss_bytes": result["max_rss_bytes"],
                     "cuda_max_allocated_bytes": result.get("cuda_max_allocated_bytes")})
        metrics.close()
    return result
