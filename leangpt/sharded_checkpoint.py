"""Sharded checkpoints of fsdp=True runs: torch.distributed.checkpoint (DCP) writes each rank's
shards of the weights and of the optimizer state; a small `leangpt.pt` beside them holds what is
not a shard (counters, the config, every rank's RNG state, the samplers, the tokenizer).

`out_dir/ckpt.dcp` is a symbolic link to the directory of the last whole save. A save writes a
new directory under a temporary name, renames it when every rank has finished, and only then
points the link at it (an atomic rename of a new link) and deletes the previous directory, so a
save killed at any moment leaves the previous checkpoint whole and loadable.

Nothing in a checkpoint directory is executed, and nothing damaged loads: DCP itself unpickles
`.metadata` and its non-tensor items with plain pickle, so every read here goes through a reader
whose unpickler knows only DCP's metadata classes and a planner that loads items with
`weights_only=True`; and each save records the size and SHA-256 of every file it wrote (each
rank hashes its own), checked before anything is read. The link is resolved once, and must stay
inside out_dir.

Weights and optimizer state are keyed by parameter name and held as DTensors (state replicated
where it is whole on every rank, see optim/shards.py), so DCP reshards them on load: a run saved
on N ranks resumes on M. `export` writes the single-file ckpt.pt that sample.py, convert,
init_from=resume without FSDP, and upstream nanoGPT read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import re
import secrets
import shutil
import warnings
from pathlib import Path

import torch

from . import checkpoint
from .checkpoint import CheckpointError
from .errors import first_line
from .fileio import directory_lock
from .optim.owner import load_named_state, named_state
from .optim.shards import local

EXTRAS = "leangpt.pt"
SUFFIX = ".dcp"
METADATA = ".metadata"  # DCP's name for its index of the shards


def sharded_path(path: Path) -> Path:
    """Where the sharded form of `out_dir/ckpt.pt` (or best.pt) lives."""
    return Path(path).with_suffix(SUFFIX)


def _state_dict_api():
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    return dcp, get_state_dict, set_state_dict


# What DCP's `.metadata` pickles (torch 2.5 - 2.13): its own dataclasses, shapes, dtypes, layouts.
# Anything else in that file is refused before it is built, so a crafted `.metadata` runs nothing.
_METADATA_CLASSES = {
    "torch.distributed.checkpoint.metadata": {"Metadata", "BytesStorageMetadata", "ChunkStorageMetadata",
                                              "MetadataIndex", "StorageMeta", "TensorProperties",
                                              "TensorStorageMetadata", "_MEM_FORMAT_ENCODING"},
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},  # a layout by its name
    "torch": {"Size"},
    "pathlib": {"PosixPath", "PurePosixPath"},  # the save's checkpoint_id, kept in StorageMeta
    "collections": {"OrderedDict"},
}


class RefusedPickle(CheckpointError):
    """A checkpoint file asked to build something that is not plain checkpoint data."""


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name in _METADATA_CLASSES.get(module, ()):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise RefusedPickle(f"{module}.{name}")


def read_metadata(path: Path):
    """DCP's `.metadata` at `path`, unpickled with only DCP's own classes allowed."""
    from torch.distributed.checkpoint.metadata import Metadata
    try:
        with open(path, "rb") as f:
            metadata = _MetadataUnpickler(f).load()
    except RefusedPickle as exc:
        raise RefusedPickle(f"{path} asks to run {exc} while it is read, which DCP's metadata never does: "
                            "refused (nothing in a checkpoint is executed)") from None
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: the sharded checkpoint is incomplete") from None
    except Exception as exc:  # a truncated or damaged pickle: EOFError, UnpicklingError, ...
        raise CheckpointError(f"{path} is damaged ({type(exc).__name__}: {first_line(exc)})") from None
    if not isinstance(metadata, Metadata):
        raise CheckpointError(f"{path} is not DCP metadata (it holds a {type(metadata).__name__})")
    return metadata


def _safe_storage():
    """A DCP reader and load planner that unpickle nothing but plain data (see read_metadata)."""
    from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    class Reader(FileSystemReader):
        def read_metadata(self, *args, **kwargs):
            rank = kwargs.get("rank")
            metadata = read_metadata(Path(self.path) / (METADATA if rank is None else f"__{rank}{METADATA}"))
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    class Planner(DefaultLoadPlanner):
        def load_bytes(self, read_item, value):
            # torch's planner loads these items with weights_only=False: load them here with
            # weights_only=True, and hand it the re-saved plain value (a few numbers and names)
            try:
                with torch.serialization.safe_globals(_state_classes()):
                    plain = torch.load(value, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise RefusedPickle(f"item {read_item.dest_index.fqn!r} is not plain data ({first_line(exc)}): "
                                    "refused (nothing in a checkpoint is executed)") from None
            buffer = io.BytesIO()
            torch.save(plain, buffer)
            buffer.seek(0)
            super().load_bytes(read_item, buffer)

    return Reader, Planner


def _state_classes() -> list:
    """Classes an owner-stepped optimizer keeps whole in its state, allowed by name and nothing else:
    GaLore's projector (pytorch_optimizer), a plain object of numbers and tensors without a
    __setstate__, rebuilt by weights_only's unpickler from its attributes."""
    try:
        from pytorch_optimizer.optimizer.utils.galore import GaLoreProjector
    except ImportError:
        return []
    return [GaLoreProjector]


def _sha256(path: Path) -> list:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return [path.stat().st_size, h.hexdigest()]


_RANK_FILE = re.compile(r"__(\d+)_")  # DCP names rank r's shard files __r_<n>.distcp


def _record_files(directory: Path, dist) -> dict:
    """{file name: [size, sha256]} of every file the save wrote into `directory`: each rank hashes
    its own shard files, rank 0 also the metadata and any file no rank claims."""
    world = torch.distributed.get_world_size() if dist.group else 1
    names = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != EXTRAS)

    def owner(name):
        match = _RANK_FILE.match(name)
        return int(match.group(1)) if match and int(match.group(1)) < world else 0
    mine = {name: _sha256(directory / name) for name in names if owner(name) == (dist.rank if dist.group else 0)}
    if not dist.group:
        return mine
    every = [None] * world
    torch.distributed.all_gather_object(every, mine)
    return {name: entry for part in every for name, entry in part.items()}


def check_before_reading(directory: Path, extras: dict) -> None:
    """Every file the save recorded is there with its size and digest (each rank checks a share)
    and `.metadata` unpickles with DCP's classes alone, before DCP reads anything. The ranks agree
    on the outcome first, so that each of them stops with the same line (a rank that failed alone
    would leave the others waiting in a collective until torchrun kills them)."""
    group = torch.distributed.is_initialized()
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if group else (0, 1)
    try:
        problems = _damaged_files(directory, extras.get("files"), rank, world)
        if not problems:
            read_metadata(directory / METADATA)
    except CheckpointError as exc:
        problems = [str(exc)]
    if group:
        every = [None] * world
        torch.distributed.all_gather_object(every, problems)
        problems = [p for part in every for p in part]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(set(problems)) > 1 else ""
        raise CheckpointError(problems[0] + more)


def _damaged_files(directory: Path, record, rank: int, world: int) -> list[str]:
    """What is wrong with this rank's share of the recorded files (every `world`-th name)."""
    if record is None:  # a checkpoint saved before file digests were recorded
        return []
    if not isinstance(record, dict) or not all(isinstance(k, str) and "/" not in k and k not in ("", ".", "..")
                                               and isinstance(v, list) and len(v) == 2 for k, v in record.items()):
        return [f"{directory / EXTRAS} is damaged: its record of files is not a list of names and digests"]
    problems = []
    for name in sorted(record)[rank::world]:
        path = directory / name
        if not path.is_file():
            problems.append(f"{path} is missing: the sharded checkpoint is incomplete")
            continue
        size, sha = _sha256(path)
        want_size, want_sha = record[name]
        if size != want_size:
            problems.append(f"{path} is damaged: {size} bytes where the save wrote {want_size}")
        elif sha != want_sha:
            problems.append(f"{path} is damaged: its contents do not match the digest the save recorded")
    return problems


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
        files = _record_files(partial, dist)  # a collective: every rank's shards are written
        if dist.master:
            checkpoint.save_atomic({**extras, "eval_done": eval_done, "files": files}, partial / EXTRAS)
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


def open_sharded(path: Path) -> tuple[Path, dict]:
    """The directory `path`'s sharded form points to (resolved once: a save that moves the link
    later does not mix two saves) and its non-shard part (counters, config, RNG, samplers), checked."""
    link = sharded_path(path)
    if not link.exists():
        hint = (f"; {path} is a single-process checkpoint: resume it without fsdp, or train from scratch "
                "with fsdp=True" if Path(path).is_file() else "")
        raise CheckpointError(f"no sharded checkpoint at {link}{hint}")
    directory = link.resolve()
    if directory.parent != link.parent.resolve() or not directory.is_dir():
        raise CheckpointError(f"{link} points to {directory}, outside {link.parent}: a sharded checkpoint is "
                              "a directory of its out_dir; refused")
    extras_path = directory / EXTRAS
    try:
        extras = torch.load(extras_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{extras_path} is not readable ({first_line(exc)})") from None
    if not isinstance(extras, dict) or "model_args" not in extras:
        raise CheckpointError(f"{extras_path} is not a leangpt sharded checkpoint (no model_args)")
    if extras.get("digest") != checkpoint.digest(extras):
        raise CheckpointError(f"{extras_path} is damaged: its contents do not match the digest stored in it")
    return directory, extras


def load_sharded(model, optimizer, directory: Path, extras: dict) -> None:
    """Weights and optimizer state from the sharded checkpoint in `directory` into `model` and
    `optimizer`, resharded to this run's world size (or whole, without a process group: `export`);
    `directory` and `extras` are what open_sharded() returned. Every file is verified first."""
    from torch.distributed.checkpoint.api import CheckpointException
    dcp, get_state_dict, set_state_dict = _state_dict_api()
    check_before_reading(directory, extras)
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
        raise CheckpointError(f"{directory} holds {layout} optimizer state, which this variant does not read")
    Reader, Planner = _safe_storage()
    try:
        dcp.load({"model": model_sd, "optimizer": optim_sd}, storage_reader=Reader(str(directory)),
                 planner=Planner())
    except (Exception, CheckpointException) as exc:  # CheckpointException is a BaseException
        raise CheckpointError(_load_failure(exc, directory)) from None
    if owner:
        set_model_state_dict(model, model_sd)
        optimizer.load_named_state(optim_sd)
        optimizer.sync_from_shards()
    elif layout == "owner":
        model.load_state_dict(model_sd)
        load_named_state(optimizer, names, optim_sd)
    else:
        set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd)


def _load_failure(exc: BaseException, directory: Path) -> str:
    """One line for a failed DCP load: a refused or damaged file by its name, else what did not fit.
    DCP wraps each rank's error in a CheckpointException whose `failures` maps rank -> error."""
    failures = list(getattr(exc, "failures", {}).values()) or [exc]
    for failure in failures:
        cause = failure[0] if isinstance(failure, tuple) else failure  # (exception, traceback) in some torch
        if isinstance(cause, CheckpointError):
            return str(cause)
        if isinstance(cause, OSError) and getattr(cause, "filename", None):
            return f"{cause.filename} could not be read ({cause.strerror}): the sharded checkpoint is incomplete"
    first = failures[0][0] if isinstance(failures[0], tuple) else failures[0]
    return f"{directory} does not fit this model and optimizer ({first_line(first)})"


def export(out_dir: str, name: str = "ckpt", log=print) -> Path:
    """`out_dir/NAME.dcp` -> `out_dir/NAME.pt`, the single-file checkpoint every other command reads."""
    path = Path(out_dir) / f"{name}.pt"
    # under the trainer's lock: a save beside this read would delete the directory being read
    with directory_lock(out_dir):
        return _export(path, log)


def _export(path: Path, log) -> Path:
    from .model import GPT
    from .optim import build_optimizer, load_variant
    from .config import TrainConfig
    directory, extras = open_sharded(path)
    saved = {k: v for k, v in (extras.get("config") or {}).items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    config = dataclasses.replace(TrainConfig(**saved), fsdp=False, optimizer_in_backward=False, zero=False)
    load_variant(config.optimizer_variant)
    model = GPT(checkpoint.model_config(extras, path))
    optimizer = build_optimizer(model, config)
    with warnings.catch_warnings():  # DCP's note that it loads in one process: that is the point here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        load_sharded(model, optimizer, directory, extras)
    checkpoint.save_atomic({k: v for k, v in extras.items() if k not in ("digest", "files")} | {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "config": dataclasses.asdict(config)}, path)
    log(f"wrote {path} from {sharded_path(path)} -> {directory.name} (iter {extras.get('iter_num')}, "
        f"{model.num_params() / 1e6:.2f}M parameters, optimizer {config.optimizer_variant})")
    return path
