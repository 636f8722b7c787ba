"""Checkpoints: atomic writes, complete resume state, and clear errors for bad files.

A checkpoint is a dict with nanoGPT's keys (model, optimizer, model_args, iter_num,
best_val_loss, config) plus leangpt's: the RNG states of torch, numpy, python and the batch
samplers, and whether the evaluation at iter_num already ran. Everything in it is a plain type
or a tensor, so it loads with torch.load(weights_only=True). Checkpoints written by upstream
nanoGPT load too (without RNG state, so their resume is not bit-exact).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from .errors import LeanGPTError, first_line
from .fileio import atomic_write
from .model import GPT, GPTConfig

COMPILE_PREFIX = "_orig_mod."


class CheckpointError(LeanGPTError):
    """A missing, corrupt or incompatible checkpoint."""


def digest(obj) -> str:
    """SHA-256 of everything in a checkpoint but the digest itself: keys, plain values, and each
    tensor's dtype, shape and bytes. torch.load does not check the zip's CRCs, so a flipped byte
    inside a tensor would otherwise load as a silently different model."""
    h = hashlib.sha256()

    def walk(x):
        if torch.is_tensor(x) and type(x) is not torch.Tensor and hasattr(x, "__tensor_flatten__"):
            names, meta = x.__tensor_flatten__()  # a tensor subclass (torchao's 8-bit state): its inner tensors
            h.update(f"S{type(x).__name__}{tuple(x.shape)}{meta!r}".encode())
            for name in names:
                walk(getattr(x, name))
        elif torch.is_tensor(x):
            t = x.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(x, dict):
            for k, v in x.items():
                if k != "digest":
                    h.update(f"K{k!r}".encode())
                    walk(v)
        elif isinstance(x, (list, tuple)):
            h.update(f"L{len(x)}".encode())
            for v in x:
                walk(v)
        else:
            h.update(f"V{x!r}".encode())

    walk(obj)
    return h.hexdigest()


def save_atomic(obj: dict, path: str | Path) -> None:
    """torch.save through a temporary file: an interrupted save never destroys the previous one.
    The payload carries its own digest, checked by load()."""
    obj = {**obj, "digest": digest(obj)}
    try:
        atomic_write(path, lambda f: torch.save(obj, f))
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write (a full disk) as a RuntimeError
        raise CheckpointError(f"could not write {path}: {write_failure(exc, Path(path))}; the previous "
                              f"{Path(path).name} (if any) is intact") from None


def write_failure(exc: BaseException, path: Path) -> str:
    """What went wrong with a write, in words: the OS's reason, else the space left where it went."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return f"the write failed ({first})" + (f"; its filesystem has {free:,} bytes free" if free is not None else "")


def load(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            if "torchao" not in str(exc):
                raise
            # AdamW8bit's state: torchao declares its tensor classes safe to load once it is imported
            from .optim.field import adamw8bit_class
            adamw8bit_class()
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint ({first_line(exc)})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_args" not in ckpt:
        raise CheckpointError(f"{path} is not a GPT checkpoint (no 'model' / 'model_args')")
    if "digest" in ckpt and ckpt["digest"] != digest(ckpt):  # upstream nanoGPT's files carry none
        raise CheckpointError(f"{path} is damaged: its contents do not match the digest stored in it")
    check_structure(ckpt, path)
    return ckpt


# the parts a checkpoint may hold, each with the type it must have when present (and not None)
_PARTS = {"model": dict, "model_args": dict, "leangpt_model_args": dict, "config": dict, "optimizer": dict,
          "rng": dict, "rng_per_rank": list, "samplers": dict, "meta": dict}


def check_structure(ckpt: dict, path) -> None:
    """Every part has the type leangpt (or nanoGPT) writes, so that a file with a valid digest but
    odd contents is one clear error here, not a TypeError deep in resume or sampling."""
    for key, kind in _PARTS.items():
        value = ckpt.get(key)
        if value is None and key not in ("model", "model_args"):
            continue
        if not isinstance(value, kind):
            raise CheckpointError(f"{path} is not a usable checkpoint: its {key!r} is a {type(value).__name__}, "
                                  f"not a {kind.__name__}")
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in ckpt["model"].items()):
        raise CheckpointError(f"{path} is not a usable checkpoint: its 'model' is not a state dict of tensors")
    optimizer = ckpt.get("optimizer")
    if optimizer is not None and not ({"state", "param_groups"} <= set(optimizer)):
        raise CheckpointError(f"{path} is not a usable checkpoint: its 'optimizer' lacks state/param_groups")
    if ckpt.get("meta") is not None:
        from .data import DataError, check_meta
        try:
            check_meta(ckpt["meta"], "its vocabulary (meta)")
        except DataError as exc:
            raise CheckpointError(f"{path} is not a usable checkpoint: {exc}") from None


# what upstream nanoGPT's GPTConfig accepts: its sample.py and train.py call GPTConfig(**model_args)
NANOGPT_MODEL_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size", "dropout")


def model_args(config: GPTConfig) -> dict:
    """The checkpoint's `model_args` and `leangpt_model_args`.

    `model_args` holds nanoGPT's keys only, so that an MHA checkpoint loads in upstream nanoGPT
    unchanged; n_headgroup joins it only when it is not 1 (such a model has other shapes, and
    nanoGPT should refuse it by name). `leangpt_model_args` holds every field.
    """
    full = dataclasses.asdict(config)
    nanogpt = {k: full[k] for k in NANOGPT_MODEL_ARGS}
    if config.n_headgroup != 1:
        nanogpt["n_headgroup"] = config.n_headgroup
    return {"model_args": nanogpt, "leangpt_model_args": full}


def model_config(ckpt: dict, path: str | Path = "checkpoint") -> GPTConfig:
    known = {f.name for f in dataclasses.fields(GPTConfig)}
    saved = {**ckpt["model_args"], **(ckpt.get("leangpt_model_args") or {})}
    args = {k: v for k, v in saved.items() if k in known}
    try:
        return GPTConfig(**args)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has invalid model_args: {exc}") from None


def clean_state_dict(state_dict: dict) -> dict:
    """Strip torch.compile's prefix and the causal-mask buffers old nanoGPT versions saved."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith(COMPILE_PREFIX):
            key = key[len(COMPILE_PREFIX):]
        if key.endswith(".attn.bias") and key.count(".") == 4:  # transformer.h.N.attn.bias (a mask)
            continue
        out[key] = value
    return out


def load_model(ckpt: dict, path: str | Path = "checkpoint", **overrides) -> GPT:
    config = model_config(ckpt, path)
    config = dataclasses.replace(config, **overrides) if overrides else config
    model = GPT(config)
    try:
        model.load_state_dict(clean_state_dict(ckpt["model"]))
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise CheckpointError(f"{path} does not match its model_args: {detail[:300]}") from None
    return model


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, tuple) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x
