"""Optimizer step time and state size for every variant, side by side in one run.

    python bench/bench_optim.py [--steps=200] [--rounds=3] [--models=seed] [--json=PATH]

For the seed model (4x128, block 64, vocab 65) and a 6x384 model (block 256), with random
gradients: ms per optimizer.step() (the mean of `steps` steps, so a projection refresh every 200
steps is paid for; median over rounds) and optimizer-state bytes measured after the steps, each
as a ratio to torch.optim.AdamW with foreach=True; fused AdamW is listed too. The first step is
timed apart (AdamW8bit compiles its step there). The low-rank methods run at rank n_embd / 4.
Every variant of the field needs the `optimizers` extra.
"""

from __future__ import annotations

import json
import statistics
import sys
import warnings
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leangpt.config import TrainConfig  # noqa: E402
from leangpt.model import GPT, GPTConfig  # noqa: E402
from leangpt.optim import build_optimizer, param_groups, state_bytes  # noqa: E402
from leangpt.variants import NAMES  # noqa: E402

MODELS = {
    "seed 4x128": GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, bias=False),
    "6x384": GPTConfig(block_size=256, vocab_size=65, n_layer=6, n_head=6, n_embd=384, bias=False),
}


# every registered variant; the three above get entries of their own below (two AdamW kernels, and
# AdamSN and Adafactor with and without a first moment)
FIELD = tuple(name for name in NAMES if name not in ("adamw", "adamsn", "adafactor"))


def variants(model):
    groups = lambda: param_groups(model, 0.1)
    rank = model.config.n_embd // 4
    base = TrainConfig(learning_rate=1e-3, weight_decay=0.1, adamsnsm_rank=rank, galore_rank=rank, apollo_rank=rank)
    make = lambda **kw: build_optimizer(model, TrainConfig(**{**base.__dict__, **kw}))
    out = {
        "adamw (foreach)": lambda: torch.optim.AdamW(groups(), lr=1e-3, foreach=True),
        "adamw (fused)": lambda: torch.optim.AdamW(groups(), lr=1e-3, fused=True),
        "adamsn": lambda: make(optimizer_variant="adamsn"),
        "adamsn beta1=0": lambda: make(optimizer_variant="adamsn", beta1=0.0),
        "adafactor": lambda: make(optimizer_variant="adafactor"),
        "adafactor beta1=0.9": lambda: make(optimizer_variant="adafactor", adafactor_beta1=0.9),
    }
    out.update({v: (lambda v=v: make(optimizer_variant=v)) for v in FIELD})
    return out


def time_steps(opt, steps: int) -> tuple[float, float]:
    """(ms of the first step, mean ms per step of `steps` steps after 10 warm-up steps)."""
    t0 = time.perf_counter()
    opt.step()
    first = (time.perf_counter() - t0) * 1000
    for _ in range(9):
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return first, (time.perf_counter() - t0) * 1000 / steps


def main(argv):
    steps = int(next((a.split("=", 1)[1] for a in argv if a.startswith("--steps=")), 200))
    rounds = int(next((a.split("=", 1)[1] for a in argv if a.startswith("--rounds=")), 3))
    only = next((a.split("=", 1)[1] for a in argv if a.startswith("--models=")), None)
    json_path = next((a.split("=", 1)[1] for a in argv if a.startswith("--json=")), None)
    warnings.filterwarnings("ignore")
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {steps} steps x {rounds} rounds")
    results = {}
    for name, config in MODELS.items():
        if only and not name.startswith(only):
            continue
        torch.manual_seed(0)
        model = GPT(config)
        for p in model.parameters():
            p.grad = torch.randn_like(p) * 1e-2
        makers = variants(model)
        ms = {k: [] for k in makers}
        first_ms = {k: [] for k in makers}
        size = {}
        for _ in range(rounds):  # alternate the variants so that drifts in machine speed hit all alike
            for key, make in makers.items():
                opt = make()
                first, mean = time_steps(opt, steps)
                first_ms[key].append(first)
                ms[key].append(mean)
                size[key] = state_bytes(opt)
                with torch.no_grad():  # undo the steps' drift so every variant sees the same model
                    torch.manual_seed(0)
                    model.load_state_dict(GPT(config).state_dict())
        base_ms = statistics.median(ms["adamw (foreach)"])
        base_bytes = size["adamw (foreach)"]
        print(f"\n{name}: {model.num_params():,} parameters")
        print("| variant | ms/step | vs AdamW foreach | first step ms | state bytes | vs AdamW |")
        print("|---|---:|---:|---:|---:|---:|")
        results[name] = {}
        for key in makers:
            m, f = statistics.median(ms[key]), statistics.median(first_ms[key])
            results[name][key] = dict(ms=m, ms_ratio=m / base_ms, first_ms=f, state_bytes=size[key],
                                      state_ratio=size[key] / base_bytes)
            print(f"| {key} | {m:.2f} | {m / base_ms:.2f}x | {f:.0f} | {size[key]:,} | {size[key] / base_bytes:.3f}x |")
    if json_path:
        Path(json_path).write_text(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__,
                                               "steps": steps, "rounds": rounds, "models": results}, indent=1))


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    main(sys.argv[1:])
