"""MHA -> GQA checkpoint conversion by mean-pooling each group's K and V heads (Ainslie et al., 2023).

The converted model computes exactly what the MHA model computes once each of its K and V heads
is replaced by its group's mean, which is the best starting point the GQA paper found for
"uptraining". The optimizer state and iteration counter are reset, so that
`train.py --init_from=resume --out_dir=OUT` continues from the converted weights.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from . import checkpoint
from .checkpoint import CheckpointError
from .config import ConvertConfig
from .fileio import directory_lock
from .model import GPTConfig


def pool_kv_heads(c_attn: torch.Tensor, config: GPTConfig, n_headgroup: int) -> torch.Tensor:
    """c_attn rows [q; k; v] of an MHA layer -> [q; k pooled; v pooled] (weight or bias)."""
    width = config.n_embd
    q, k, v = c_attn.split([width, width, width], dim=0)
    n_kv = config.n_head // n_headgroup
    pool = lambda t: t.reshape(n_kv, n_headgroup, config.head_dim, *t.shape[1:]).mean(dim=1).reshape(
        n_kv * config.head_dim, *t.shape[1:])
    return torch.cat([q, pool(k), pool(v)], dim=0)


def convert(config: ConvertConfig, log=print) -> Path:
    config.validate()
    in_path = Path(config.in_dir) / "ckpt.pt"
    ckpt = checkpoint.load(in_path)
    source = checkpoint.model_config(ckpt, in_path)
    if source.n_headgroup != 1:
        raise CheckpointError(f"{in_path} already has n_headgroup={source.n_headgroup}; convert an MHA checkpoint")
    if source.n_head % config.n_headgroup:
        raise CheckpointError(f"n_headgroup={config.n_headgroup} must divide the checkpoint's n_head={source.n_head}")
    state = checkpoint.clean_state_dict(ckpt["model"])
    for i in range(source.n_layer):
        for kind in ("weight", "bias"):
            key = f"transformer.h.{i}.attn.c_attn.{kind}"
            if key in state:
                state[key] = pool_kv_heads(state[key], source, config.n_headgroup)
    target = dataclasses.replace(source, n_headgroup=config.n_headgroup)
    out = {
        "format": "leangpt-1",
        "model": state,
        "optimizer": None,
        **checkpoint.model_args(target),
        "config": {**(ckpt.get("config") or {}), "n_headgroup": config.n_headgroup},
        "iter_num": 0,
        "best_val_loss": 1e9,
        "eval_done": False,
        "converted_from": str(in_path),
    }
    if "meta" in ckpt:
        out["meta"] = ckpt["meta"]
    checkpoint.load_model(out, "the converted checkpoint")  # fail here, not at training time
    out_path = Path(config.out_dir) / "ckpt.pt"
    # a trainer on out_dir would overwrite the result at its next save: hold the same lock it takes
    with directory_lock(config.out_dir):
        if out_path.exists():  # another run's: its best.pt, config.json and metrics.jsonl would not match
            raise CheckpointError(f"{out_path} exists (another run's checkpoint); convert into an empty "
                                  "--out_dir, or delete that run first")
        checkpoint.save_atomic(out, out_path)
    log(f"wrote {out_path}: n_head={source.n_head}, n_headgroup={config.n_headgroup} "
        f"({source.n_head // config.n_headgroup} K/V heads per layer, was {source.n_head}); "
        f"uptrain with --init_from=resume --out_dir={config.out_dir}")
    return out_path
