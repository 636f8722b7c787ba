"""What the training loop carries from one iteration to the next, and the checkpoint that holds it.

`TrainState` is everything a resumed run needs to continue exactly: the model, the optimizer, the
batch samplers, the counters and (in the checkpoint) every RNG state. `restore` is the one path
from a checkpoint back into a state; `save` the one path out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from . import checkpoint
from .checkpoint import CheckpointError
from .data import BatchSampler
from .pretrained import is_pretrained
from .tokenizer import vocabulary_difference
from .device import available_ram
from .errors import LeanGPTError
from .model import ARCHITECTURE_KEYS, GPT, model_config_from
from .optim import optimizer_spec


class TrainingError(LeanGPTError):
    """Training cannot go on (a non-finite loss, for instance)."""


# the samplers a run draws from: training batches, and the two evaluation streams (own seeds, so
# evaluating never moves the training stream)
SAMPLERS = (("train", "train", 0), ("eval_train", "train", 1), ("eval_val", "val", 2))


@dataclasses.dataclass
class TrainState:
    model: GPT  # the bare module: neither compiled nor wrapped in DDP
    optimizer: torch.optim.Optimizer
    samplers: dict[str, BatchSampler]
    meta: dict  # the dataset's meta.pkl: its tokenizer and vocabulary (tokenizer.py)
    iter_num: int = 0
    best_val_loss: float = 1e9
    best_iter: int | None = None  # when this process saw the best val loss
    evaluated_at: int = -1  # an iteration whose evaluation the checkpoint already holds


def new_samplers(paths: dict, config, rank: int, world_size: int, meta: dict,
                 model_vocab: int | None = None) -> dict[str, BatchSampler]:
    """The run's batch samplers; an id at or above the model's vocabulary (or the meta's) is an error."""
    vocab = min(meta["vocab_size"], model_vocab or meta["vocab_size"])
    return {name: BatchSampler(paths[split], config.block_size, config.batch_size, config.seed + offset, rank,
                               world_size, vocab, meta.get("dtype", "uint16"))
            for name, split, offset in SAMPLERS}


def build_model(config, ckpt: dict | None, ckpt_path: Path, meta: dict, log):
    """A fresh model, or the checkpoint's: then its architecture wins over the config's. Returns
    the model and the config with the architecture it has."""
    vocab_size = meta["vocab_size"]
    if ckpt is None and is_pretrained(config.init_from):
        return _from_gpt2(config, log)
    if ckpt is None:
        return _allocate(model_config_from(config, vocab_size)), config
    saved = checkpoint.model_config(ckpt, ckpt_path)
    # GPT-2 ids fit any vocabulary up to the dataset's padded 50304 (GPT-2's weights have 50257)
    gpt2_fits = meta.get("tokenizer") == "gpt2" and saved.vocab_size <= vocab_size
    if saved.vocab_size != vocab_size and not gpt2_fits:
        raise CheckpointError(f"{ckpt_path} has vocab_size={saved.vocab_size} but dataset "
                              f"{config.dataset!r} has {vocab_size}")
    difference = vocabulary_difference(ckpt["meta"], meta) if ckpt.get("meta") is not None else ""
    if difference:
        raise CheckpointError(f"{ckpt_path} was trained on another vocabulary than dataset {config.dataset!r} "
                              f"({difference})")
    keys = [k for k in ARCHITECTURE_KEYS if k != "vocab_size"]
    changed = [k for k in keys if getattr(saved, k) != getattr(config, k)]
    if changed:
        log("resuming with the checkpoint's architecture: " + ", ".join(f"{k}={getattr(saved, k)}" for k in changed))
    config = dataclasses.replace(config, **{k: getattr(saved, k) for k in keys})
    if "model" not in ckpt:  # a sharded checkpoint's record: its weights load once the model is sharded
        return _allocate(dataclasses.replace(saved, dropout=config.dropout, attn_impl=config.attn_impl)), config
    return checkpoint.load_model(ckpt, ckpt_path, dropout=config.dropout, attn_impl=config.attn_impl), config


def _from_gpt2(config, log):
    """GPT-2's weights, and the config with their architecture (nanoGPT's init_from='gpt2*')."""
    from .pretrained import PretrainedError, load_gpt2
    if config.n_headgroup != 1:
        raise PretrainedError(f"GPT-2's weights are multi-head (n_headgroup=1), not n_headgroup={config.n_headgroup}: "
                              "fine-tune them as they are, then make them GQA with leangpt convert --n_headgroup=N")
    model, directory = load_gpt2(config.init_from, config.block_size, config.dropout)
    c = model.config
    log(f"initialized from GPT-2 weights in {directory}: n_layer={c.n_layer}, n_head={c.n_head}, n_embd={c.n_embd}, "
        f"vocab_size={c.vocab_size}, block_size={c.block_size}, gelu={c.gelu}")
    return model, dataclasses.replace(config, **{k: getattr(c, k) for k in ARCHITECTURE_KEYS if k != "vocab_size"})


def _allocate(model_config) -> GPT:
    """The model, or one clear line when its weights cannot fit in memory (checked before
    allocating: past the RAM, Linux may hand out the pages and kill the process while it fills them)."""
    c = model_config
    approx = 12 * c.n_layer * c.n_embd ** 2 + (c.vocab_size + c.block_size) * c.n_embd
    too_large = TrainingError(f"the model does not fit in memory: about {approx / 1e6:,.0f}M parameters "
                              f"({approx * 4 / 2**30:,.1f} GiB in float32) for n_layer={c.n_layer}, "
                              f"n_embd={c.n_embd}; use a smaller model (leangpt memory estimates what a size needs)")
    free = available_ram()
    if free is not None and approx * 4 > free:
        raise too_large
    try:
        return GPT(model_config)
    except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        if not isinstance(exc, (MemoryError, torch.OutOfMemoryError)) and "alloc" not in str(exc).lower():
            raise
        raise too_large from None


def restore(state: TrainState, ckpt: dict, path: Path, config, rank: int, world_size: int, log) -> None:
    """Counters, optimizer moments, RNG and sampler positions from `ckpt` into `state`."""
    state.iter_num, state.best_val_loss = _counters(ckpt, path)
    # a resumed run has already evaluated at its iteration, unless it only evaluates
    if ckpt.get("eval_done", True) and not config.eval_only:
        state.evaluated_at = state.iter_num
    if ckpt.get("optimizer") is not None:
        _restore_optimizer(state.optimizer, ckpt, config, state.model)
    if "rng" in ckpt and "samplers" in ckpt:
        try:
            per_rank = ckpt.get("rng_per_rank") or [ckpt["rng"]]
            # each rank continues its own dropout stream when the world size is unchanged
            checkpoint.set_rng_state(per_rank[rank] if len(per_rank) == world_size else ckpt["rng"])
            for name, sampler in state.samplers.items():
                sampler.load_state_dict(ckpt["samplers"][name])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise CheckpointError(f"{path} has unusable RNG or sampler state "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    elif state.iter_num > 0:
        log("note: this checkpoint holds no RNG state (not written by leangpt); resume is not bit-exact")


def _counters(ckpt: dict, path: Path) -> tuple[int, float]:
    try:
        iter_num, best = ckpt.get("iter_num", 0), ckpt.get("best_val_loss", 1e9)
        if isinstance(iter_num, bool) or not isinstance(iter_num, int) or iter_num < 0:
            raise ValueError(f"iter_num={iter_num!r}")
        return iter_num, float(best)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has an invalid counter: {exc}") from None


def _restore_optimizer(optimizer, ckpt: dict, config, model: GPT) -> None:
    """The checkpoint's moments, with the hyper-parameters the command line gives now (betas, eps,
    weight decay, ...: load_state_dict would bring back the checkpoint's; resume_changes names them)."""
    check_optimizer_variant(ckpt, config)
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"the checkpoint's optimizer state does not fit this model: {exc}") from None
    apply_current_settings(optimizer, config, model)


def check_optimizer_variant(ckpt: dict, config) -> None:
    saved_variant = (ckpt.get("config") or {}).get("optimizer_variant", "adamw")
    if saved_variant != config.optimizer_variant:
        raise CheckpointError(f"the checkpoint's optimizer state is {saved_variant}, not optimizer_variant="
                              f"{config.optimizer_variant}; resume with --optimizer_variant={saved_variant}")


def apply_current_settings(optimizer, config, model: GPT) -> None:
    """The hyper-parameters the command line gives now, over those a loaded state brought back."""
    cls, groups, kwargs = optimizer_spec(model, config)
    fresh = cls(groups, **kwargs)  # holds no state yet: read for the settings each group gets now
    for group, fresh_group in zip(optimizer.param_groups, fresh.param_groups):
        # lr comes from the schedule; "step" is a step counter some optimizers keep per group
        group.update({k: v for k, v in fresh_group.items() if k not in ("params", "lr", "step")})


def save(state: TrainState, config, dist, path: Path, eval_done: bool) -> None:
    """Write `state` to `path` atomically. Called on every rank: ZeRO's state shards and the ranks'
    RNG states are gathered to rank 0, which alone writes; under FSDP every rank writes its shards
    (sharded_checkpoint.py)."""
    if config.fsdp:
        from .sharded_checkpoint import save_sharded, sharded_path, weights_finite
        finite, where = weights_finite(state.model, dist), sharded_path(path)
    else:
        # every rank holds the same weights, so every rank stops here together, before a collective
        finite, where = all(torch.isfinite(p).all() for p in state.model.parameters()), path
    if not finite:
        raise TrainingError(f"the weights are not finite at iter {state.iter_num}; {where.name} was not written "
                            f"(the last checkpoint in {path.parent} is intact)")
    rng_per_rank = dist.gather(checkpoint.rng_state())
    if config.fsdp:
        from .variants import VARIANTS
        layout = {"optimizer_layout": VARIANTS[config.optimizer_variant].fsdp_step}
        save_sharded(state, config, dist, path, eval_done, _resume_record(state, config, rng_per_rank) | layout)
        return
    if config.zero:
        state.optimizer.consolidate_state_dict(to=0)
    if not dist.master:
        return
    checkpoint.save_atomic({
        "format": "leangpt-1",
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        **_resume_record(state, config, rng_per_rank),
        "eval_done": eval_done,
    }, path)


def _resume_record(state: TrainState, config, rng_per_rank: list) -> dict:
    """Everything a checkpoint holds besides the weights and the optimizer state."""
    return {
        **checkpoint.model_args(state.model.config),
        "config": dataclasses.asdict(config),
        "iter_num": state.iter_num,
        "best_val_loss": state.best_val_loss,
        "rng": rng_per_rank[0],
        "rng_per_rank": rng_per_rank,
        "samplers": {name: s.state_dict() for name, s in state.samplers.items()},
        "meta": {k: v for k, v in state.meta.items() if k != "leangpt_files"},  # the tokenizer: a checkpoint decodes alone
    }
