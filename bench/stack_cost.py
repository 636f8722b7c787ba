"""What the memory stack costs in time: the plain step beside the chunked loss and the optimizer step
inside the backward pass, on the same command line, alternating.

    python bench/stack_cost.py config/train_shakespeare_char.py --device=cpu --compile=False \\
        --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 \\
        --n_embd=128 --dropout=0.0 [--iters=300] [--rounds=3]

Each mode trains `--iters` iterations from scratch through leangpt's trainer, as bench/bench_fast.py
does; reported are the steady ms/iter (median after the first 10 iterations, median over rounds)
and each mode's ratio to its reference: the plain step with the same `grad_clip`, since the
exact clipping of a step in the backward pass is a cost of its own (one more forward and backward).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_fast import run  # noqa: E402
from leangpt.config import TrainConfig, parse_config  # noqa: E402

# mode -> (its keys, the mode it is compared with)
MODES = {
    "plain": (dict(grad_clip=1.0), "plain"),
    "chunked loss": (dict(grad_clip=1.0, chunked_loss=True), "plain"),
    "plain, grad_clip=0": (dict(grad_clip=0.0), "plain, grad_clip=0"),
    "in backward, grad_clip=0": (dict(grad_clip=0.0, optimizer_in_backward=True), "plain, grad_clip=0"),
    "in backward, exact clipping": (dict(grad_clip=1.0, optimizer_in_backward=True), "plain"),
    "chunked loss + in backward, grad_clip=0": (dict(grad_clip=0.0, chunked_loss=True, optimizer_in_backward=True),
                                                "plain, grad_clip=0"),
}
OWN_KEYS = ("--iters=", "--rounds=")


def main(argv: list[str]) -> None:
    if "--help" in argv or "-h" in argv:
        print(__doc__)
        return
    opts = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv if a.startswith(OWN_KEYS)}
    iters, rounds = int(opts.get("--iters", 300)), int(opts.get("--rounds", 3))
    base = parse_config(TrainConfig, [a for a in argv if not a.startswith(OWN_KEYS)])
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {base.n_layer}x{base.n_embd}, "
          f"block {base.block_size}, batch {base.batch_size}, {base.dtype}, {iters} iters x {rounds} rounds")
    steady: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(rounds):
        for mode, (keys, _) in MODES.items():
            steady[mode].append(run(dataclasses.replace(base, **keys), iters)[1])
    print("| mode | steady ms/iter | compared with | ratio | per-round ratios |")
    print("|---|---:|---|---:|---|")
    for mode, (_, reference) in MODES.items():
        s, r = statistics.median(steady[mode]), statistics.median(steady[reference])
        # each round's ratio to the reference of the same round: the spread the machine's noise gives
        ratios = ", ".join(f"{m / q:.3f}" for m, q in zip(steady[mode], steady[reference]))
        print(f"| {mode} | {s:.2f} | {reference} | {s / r:.3f}x | {ratios} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
