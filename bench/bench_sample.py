"""sample.py's default draw (10 samples of 500 tokens, KV cache, temperature 0.8, top_k 200) one
sample after another (nanoGPT's loop) against one batch of all of them, alternating in one run.

    python bench/bench_sample.py [--rounds=3] [--threads=2]

The model has the seed config's shape (4x128, block 64, vocab 65) with random weights: the speed
of a step does not depend on the weights' values. Prints median tokens/s of each and the ratio.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from leangpt.model import GPT, GPTConfig


def main(argv: list[str]) -> int:
    args = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    rounds, threads = int(args.get("rounds", 3)), int(args.get("threads", 2))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, bias=False)).eval()
    prompt = torch.zeros((1, 1), dtype=torch.long)
    num_samples, new_tokens = 10, 500

    def sequential():
        for _ in range(num_samples):
            model.generate(prompt, new_tokens, temperature=0.8, top_k=200, kv_cache=True)

    def batched():
        model.generate(prompt.expand(num_samples, -1), new_tokens, temperature=0.8, top_k=200, kv_cache=True)

    rates = {"one after another": [], "one batch": []}
    with torch.no_grad():
        for _ in range(rounds):
            for name, fn in (("one after another", sequential), ("one batch", batched)):
                started = time.perf_counter()
                fn()
                rates[name].append(num_samples * new_tokens / (time.perf_counter() - started))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    print(f"{num_samples} samples x {new_tokens} tokens, {threads} threads, median of {rounds} rounds:")
    for name, rate in medians.items():
        print(f"  {name:18s} {rate:8.1f} tokens/s")
    print(f"  ratio batch / sequential: {medians['one batch'] / medians['one after another']:.2f}x")
    return 0


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
