"""Optimizer step time and state size for every variant, side by side in one run.

    python bench/bench_optim.py [--steps=200] [--rounds=3]

For the seed model (4x128, block 64, vocab 65) and a 6x384 model (block 256), with random
gradients: median ms per optimizer.step() and optimizer-state bytes, each as a ratio to
torch.optim.AdamW with foreach=True (the issue's baseline); fused AdamW is listed too.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leangpt.config import TrainConfig  # noqa: E402
from leangpt.model import GPT, GPTConfig  # noqa: E402
from leangpt.optim import build_optimizer, param_groups, state_bytes  # noqa: E402

MODELS = {
    "seed 4x128": GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, bias=False),
    "6x384": GPTConfig(block_size=256, vocab_size=65, n_layer=6, n_head=6, n_embd=384, bias=False),
}


def variants(model):
    groups = lambda: param_groups(model, 0.1)
    base = TrainConfig(learning_rate=1e-3, weight_decay=0.1)
    make = lambda **kw: build_optimizer(model, TrainConfig(**{**base.__dict__, **kw}))
    return {
        "adamw (foreach)": lambda: torch.optim.AdamW(groups(), lr=1e-3, foreach=True),
        "adamw (fused)": lambda: torch.optim.AdamW(groups(), lr=1e-3, fused=True),
        "adamsn": lambda: make(optimizer_variant="adamsn"),
        "adamsn beta1=0": lambda: make(optimizer_variant="adamsn", beta1=0.0),
        "adafactor": lambda: make(optimizer_variant="adafactor"),
        "adafactor beta1=0.9": lambda: make(optimizer_variant="adafactor", adafactor_beta1=0.9),
    }


def time_steps(opt, steps: int) -> float:
    for _ in range(10):
        opt.step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.step()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv):
    steps = int(next((a.split("=", 1)[1] for a in argv if a.startswith("--steps=")), 200))
    rounds = int(next((a.split("=", 1)[1] for a in argv if a.startswith("--rounds=")), 3))
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {steps} steps x {rounds} rounds")
    for name, config in MODELS.items():
        torch.manual_seed(0)
        model = GPT(config)
        for p in model.parameters():
            p.grad = torch.randn_like(p) * 1e-2
        makers = variants(model)
        ms = {k: [] for k in makers}
        size = {}
        for _ in range(rounds):  # alternate the variants so that drifts in machine speed hit all alike
            for key, make in makers.items():
                opt = make()
                ms[key].append(time_steps(opt, steps))
                size[key] = state_bytes(opt)
                with torch.no_grad():  # undo the steps' drift so every variant sees the same model
                    torch.manual_seed(0)
                    model.load_state_dict(GPT(config).state_dict())
        base_ms = statistics.median(ms["adamw (foreach)"])
        base_bytes = size["adamw (foreach)"]
        print(f"\n{name}: {model.num_params():,} parameters")
        print(f"| variant | ms/step | vs AdamW foreach | state bytes | vs AdamW |")
        print(f"|---|---:|---:|---:|---:|")
        for key in makers:
            m = statistics.median(ms[key])
            print(f"| {key} | {m:.2f} | {m / base_ms:.2f}x | {size[key]:,} | {size[key] / base_bytes:.3f}x |")


if __name__ == "__main__":
    main(sys.argv[1:])
