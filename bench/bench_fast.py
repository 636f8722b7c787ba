"""The fast modes of training on this machine: fp32 eager (the default) against bf16 autocast and
torch.compile, alone and together, on the same command line, alternating.

    python bench/bench_fast.py config/train_shakespeare_char.py --device=cpu --eval_iters=20 \\
        --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 \\
        --dropout=0.0 [--iters=300] [--rounds=2] [--data_dir=data]

Each mode trains `--iters` iterations from scratch through leangpt's trainer (one process, this
one). Reported: steady ms/iter (median after the first 10 iterations, median over rounds), the first
round's first iteration in ms (where torch.compile compiles), and the ratio to fp32 eager (of the
medians, and round by round). Modes this CPU cannot run fast are
refused by the trainer and reported as such (bf16 without AVX512_BF16/AMX, compile without a C++
compiler).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leangpt.config import TrainConfig, parse_config  # noqa: E402
from leangpt.errors import LeanGPTError  # noqa: E402
from leangpt.device import cpu_has_bf16_instructions  # noqa: E402
from leangpt.metrics import read_metrics  # noqa: E402
from leangpt.train import train  # noqa: E402

MODES = {"fp32 eager": dict(dtype="float32", compile=False), "bf16 eager": dict(dtype="bfloat16", compile=False),
         "fp32 compile": dict(dtype="float32", compile=True), "bf16 compile": dict(dtype="bfloat16", compile=True)}


def run(config: TrainConfig, iters: int) -> tuple[float, float]:
    torch._dynamo.reset()  # every compiled run compiles afresh (inductor's disk cache may still help)
    with tempfile.TemporaryDirectory() as out:
        cfg = dataclasses.replace(config, out_dir=out, max_iters=iters, eval_interval=10 * iters, eval_iters=1,
                                  log_interval=1, init_from="scratch")
        train(cfg, log=lambda _: None)
        ms = [r["ms"] for r in read_metrics(Path(out) / "metrics.jsonl") if r["kind"] == "train"]
    return ms[0], statistics.median(ms[10:])


def main(argv: list[str]) -> None:
    opts = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv if a.startswith(("--iters=", "--rounds="))}
    iters, rounds = int(opts.get("--iters", 300)), int(opts.get("--rounds", 2))
    base = parse_config(TrainConfig, [a for a in argv if not a.startswith(("--iters=", "--rounds="))])
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, bf16 instructions: "
          f"{cpu_has_bf16_instructions()}, {iters} iters x {rounds} rounds")
    first, steady, refused = {m: [] for m in MODES}, {m: [] for m in MODES}, {}
    for _ in range(rounds):
        for mode, keys in MODES.items():
            if mode in refused:
                continue
            try:
                f, s = run(dataclasses.replace(base, **keys), iters)
            except LeanGPTError as exc:
                refused[mode] = str(exc)
                continue
            first[mode].append(f)
            steady[mode].append(s)
    ref = statistics.median(steady["fp32 eager"])
    print("| mode | steady ms/iter | vs fp32 eager | per-round ratios | first iteration ms |")
    print("|---|---:|---:|---|---:|")
    for mode in MODES:
        if mode in refused:
            print(f"| {mode} | refused: {refused[mode]} | | | |")
            continue
        s = statistics.median(steady[mode])
        # each round's ratio to the fp32 eager run of the same round: the spread the machine's noise gives
        ratios = ", ".join(f"{m / r:.2f}" for m, r in zip(steady[mode], steady["fp32 eager"]))
        print(f"| {mode} | {s:.2f} | {s / ref:.2f}x | {ratios} | {first[mode][0]:.0f} |")


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    main(sys.argv[1:])
