"""Sharded checkpoints of fsdp=True runs: torch.distributed.checkpoint (DCP) writes each rank's
shards of the weights and of the optimizer state; a small `leangpt.pt` beside them holds what is
not a shard (counters, the config, every rank's RNG state, the samplers, the tokenizer).

`out_dir/ckpt.dcp` is a symbolic link to the directory of the last whole save. A save writes a
new directory under a temporary name, renames it when every rank has finished, and only then
points the link at it (an atomic rename of a new link) and deletes the previous directory, so a
save killed at any moment leaves the previous checkpoint whole and loadable.

Weights and optimizer state are keyed by parameter name and held as DTensors (state replicated
where it is whole on every rank, see optim/shards.py), so DCP reshards them on load: a run saved
on N ranks resumes on M. `export` writes the single-file ckpt.pt that sample.py, convert,
init_from=resume without FSDP, and upstream nanoGPT read.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import warnings
from pathlib import Path

import torch

from . import checkpoint
from .checkpoint import CheckpointError
from .optim.owner import load_named_state, named_state
from .optim.shards import local

EXTRAS = "leangpt.pt"
SUFFIX = ".dcp"


def sharded_path(path: Path) -> Path:
    """Where the sharded form of `out_dir/ckpt.pt` (or best.pt) lives."""
    return Path(path).with_suffix(SUFFIX)


def _state_dict_api():
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    return dcp, get_state_dict, set_state_dict


def _is_owner_step(optimizer) -> bool:
    from .optim.owner import OwnerStep
    return isinstance(optimizer, OwnerStep)


def _state_dicts(model, optimizer, dist) -> tuple[dict, dict]:
    """The weights (DTensors) and the optimizer state keyed by parameter name: torch's state-dict
    API for an optimizer over the shards; an OwnerStep's whole tensors, each held by its owner
    alone (DCP saves a key that one rank has from that rank), with every group's step counter."""
    dcp, get_state_dict, _ = _state_dict_api()
    if not _is_owner_step(optimizer):
        return get_state_dict(model, optimizer)
    from torch.distributed.checkpoint.state_dict import get_model_state_dict
    optim_sd = optimizer.named_state()
    steps = torch.tensor(optim_sd["group_steps"], dtype=torch.float64)
    if dist.group:  # a rank that owns none of a group's tensors may not have counted its steps
        torch.distributed.all_reduce(steps, op=torch.distributed.ReduceOp.MAX)
    optim_sd["group_steps"] = [int(v) for v in steps.tolist()]
    return get_model_state_dict(model), optim_sd


def _broadcast(obj, dist):
    if not dist.group:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _barrier(dist) -> None:
    if dist.group:
        torch.distributed.barrier()


def weights_finite(model, dist) -> bool:
    """Whether every rank's shards are finite (one all-reduce: the ranks stop together or go on together)."""
    ok = torch.tensor([float(all(torch.isfinite(local(p)).all() for p in model.parameters()))])
    if dist.group:
        torch.distributed.all_reduce(ok, op=torch.distributed.ReduceOp.MIN)
    return bool(ok.item())


def save_sharded(state, config, dist, path: Path, eval_done: bool, extras: dict) -> None:
    """Write `state` to `path`'s sharded form on every rank; `extras` (rank 0's) go beside the shards."""
    dcp = _state_dict_api()[0]
    link = sharded_path(path)
    model_sd, optim_sd = _state_dicts(state.model, state.optimizer, dist)
    name = _broadcast(f"{link.name}-{state.iter_num:08d}-{secrets.token_hex(4)}", dist)
    partial = link.parent / f".{name}.partial"
    try:
        if dist.master:
            partial.mkdir(parents=True)
        _barrier(dist)
        dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(partial))
        if dist.master:
            checkpoint.save_atomic({**extras, "eval_done": eval_done}, partial / EXTRAS)
        _barrier(dist)  # every rank's shards are on disk before the save counts
        if dist.master:
            _publish(partial, link.parent / name, link)
    except OSError as exc:
        raise CheckpointError(f"could not write {link}: {checkpoint.write_failure(exc, link)}; the previous "
                              f"{link.name} (if any) is intact") from None
    _barrier(dist)


def _publish(partial: Path, final: Path, link: Path) -> None:
    """Make `final` the checkpoint `link` points to, in one atomic step, then drop the one before."""
    previous = link.resolve() if link.is_symlink() else None
    os.rename(partial, final)
    new_link = link.parent / f".{link.name}.{secrets.token_hex(4)}.link"
    os.symlink(final.name, new_link)
    os.replace(new_link, link)
    _sync_directory(link.parent)
    if previous is not None and previous != final.resolve() and previous.parent == link.parent:
        shutil.rmtree(previous, ignore_errors=True)
    for leftover in link.parent.glob(f".{link.name}-*.partial"):  # saves killed halfway before this one
        shutil.rmtree(leftover, ignore_errors=True)


def _sync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_extras(path: Path) -> dict:
    """The non-shard part of a sharded checkpoint (counters, config, RNG, samplers), checked."""
    link = sharded_path(path)
    if not link.exists():
        hint = (f"; {path} is a single-process checkpoint: resume it without fsdp, or train from scratch "
                "with fsdp=True" if Path(path).is_file() else "")
        raise CheckpointError(f"no sharded checkpoint at {link}{hint}")
    extras_path = link / EXTRAS
    try:
        extras = torch.load(extras_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{extras_path} is not readable ({first})") from None
    if not isinstance(extras, dict) or "model_args" not in extras:
        raise CheckpointError(f"{extras_path} is not a leangpt sharded checkpoint (no model_args)")
    if extras.get("digest") != checkpoint.digest(extras):
        raise CheckpointError(f"{extras_path} is damaged: its contents do not match the digest stored in it")
    return extras


def load_sharded(model, optimizer, path: Path, extras: dict) -> None:
    """Weights and optimizer state from `path`'s sharded form into `model` and `optimizer`, resharded
    to this run's world size (or whole, without a process group: `export`); `extras` is its
    load_extras()."""
    dcp, get_state_dict, set_state_dict = _state_dict_api()
    from torch.distributed.checkpoint.state_dict import _init_optim_state, set_model_state_dict
    layout = extras.get("optimizer_layout", "shards")
    owner = _is_owner_step(optimizer)
    if owner or layout == "owner":  # state by parameter name, made first so that it loads in place
        inner = optimizer.inner if owner else optimizer
        _init_optim_state(inner)
        model_sd = model.state_dict()
        names = None if owner else {id(p): n for n, p in model.named_parameters()}
        optim_sd = optimizer.named_state() if owner else named_state(optimizer, names)
    else:
        model_sd, optim_sd = get_state_dict(model, optimizer)  # makes the optimizer's state to load into
    if (layout == "owner") != owner and torch.distributed.is_initialized():
        raise CheckpointError(f"{sharded_path(path)} holds {layout} optimizer state, which this variant does not read")
    try:
        dcp.load({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(sharded_path(path).resolve()))
    except Exception as exc:  # DCP wraps a rank's failure (a missing key, a shape) in its own error types
        first = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{sharded_path(path)} does not fit this model and optimizer ({first})") from None
    if owner:
        set_model_state_dict(model, model_sd)
        optimizer.load_named_state(optim_sd)
        optimizer.sync_from_shards()
    elif layout == "owner":
        model.load_state_dict(model_sd)
        load_named_state(optimizer, names, optim_sd)
    else:
        set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd)


def export(out_dir: str, name: str = "ckpt", log=print) -> Path:
    """`out_dir/NAME.dcp` -> `out_dir/NAME.pt`, the single-file checkpoint every other command reads."""
    from .model import GPT
    from .optim import build_optimizer, load_variant
    from .config import TrainConfig
    path = Path(out_dir) / f"{name}.pt"
    extras = load_extras(path)
    saved = {k: v for k, v in (extras.get("config") or {}).items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    config = dataclasses.replace(TrainConfig(**saved), fsdp=False, optimizer_in_backward=False, zero=False)
    load_variant(config.optimizer_variant)
    model = GPT(checkpoint.model_config(extras, path))
    optimizer = build_optimizer(model, config)
    with warnings.catch_warnings():  # DCP's note that it loads in one process: that is the point here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        load_sharded(model, optimizer, path, extras)
    checkpoint.save_atomic({k: v for k, v in extras.items() if k != "digest"} | {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "config": dataclasses.asdict(config)}, path)
    log(f"wrote {path} from {sharded_path(path)} (iter {extras.get('iter_num')}, "
        f"{model.num_params() / 1e6:.2f}M parameters, optimizer {config.optimizer_variant})")
    return path
