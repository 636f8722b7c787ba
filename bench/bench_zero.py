"""Per-rank optimizer-state bytes with and without ZeRO, 2 processes over gloo on this machine.

    python bench/bench_zero.py [--dataset=shakespeare_char] [--n_layer=4 --n_head=4 --n_embd=128 --block_size=64]

Trains 2 iterations of each variant with DistributedDataParallel on 2 CPU processes (127.0.0.1),
once with `--zero=False` and once with `--zero=True`, and prints what each rank's optimizer holds
(read from the run's metrics.jsonl). Memory-reduced optimizers and ZeRO multiply their savings.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("adamw", "adamsn", "adafactor")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def per_rank_bytes(variant: str, zero: bool, extra: list[str]) -> list[int]:
    with tempfile.TemporaryDirectory() as out:
        args = ["-m", "leangpt", "train", "--device=cpu", "--compile=False", "--max_iters=2", "--lr_decay_iters=2",
                "--warmup_iters=0", "--eval_interval=100", "--eval_iters=1", "--batch_size=4",
                "--gradient_accumulation_steps=2", "--dataset=shakespeare_char", "--n_layer=4", "--n_head=4",
                "--n_embd=128", "--block_size=64", f"--optimizer_variant={variant}", f"--zero={zero}",
                f"--out_dir={out}", *extra]
        port = free_port()
        procs = []
        for rank in range(2):
            env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                   "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
            procs.append(subprocess.Popen([sys.executable, *args], env=env, cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        for p in procs:
            _, err = p.communicate(timeout=600)
            if p.returncode:
                raise SystemExit(f"{variant} zero={zero} failed: {err.strip().splitlines()[-1]}")
        records = [json.loads(line) for line in open(Path(out) / "metrics.jsonl")]
        return next(r for r in records if r["kind"] == "memory")["optimizer_state_bytes_per_rank"]


def main(argv: list[str]) -> None:
    print("| variant | ZeRO | rank 0 bytes | rank 1 bytes | per-rank max vs AdamW without ZeRO |")
    print("|---|---|---:|---:|---:|")
    baseline = None
    for variant in VARIANTS:
        for zero in (False, True):
            shares = per_rank_bytes(variant, zero, argv)
            baseline = baseline or max(shares)
            print(f"| {variant} | {'yes' if zero else 'no'} | {shares[0]:,} | {shares[1]:,} | "
                  f"{max(shares) / baseline:.3f}x |")


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    main(sys.argv[1:])
