"""Grouped-query attention: parameters, KV-cache size and generation speed, MHA vs GQA vs MQA.

    python bench/bench_gqa.py [--rounds=3] [--threads=N] [--only=sizes|generation|decode] [--cases=250]
                              [--dtype=bfloat16]

1. Parameters and KV-cache bytes/token (float32) at the seed size (4x128, 4 heads) and at 6x384
   (6 heads); the KV cache of n_headgroup=S must be exactly 1/S of MHA's.
2. Generation tokens/s for the 6x384 model with block_size 256 (random weights: speed does not
   depend on them), batch 1, one-token prompt: 250 new tokens (inside the block) without and
   with the KV cache, and 500 new tokens (past the block) with the exact and the approximate
   ("half") overflow strategies. `--dtype=bfloat16` generates under bf16 autocast (a CPU with bf16
   instructions): the weights are read in bf16, half the bytes.
3. One decode step of attention (1 query, 256 cached keys): SDPA with enable_gqa (what leangpt
   does) against copying K/V up to n_head with repeat_interleave first.
Variants alternate within each round; medians over rounds are printed.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leangpt.model import GPT, GPTConfig  # noqa: E402


def sizes():
    print("## Parameters and KV cache (float32)\n")
    print("| model | attention | n_kv_head | parameters | KV cache bytes/token | vs MHA |")
    print("|---|---|---:|---:|---:|---:|")
    for label, base in (("seed 4x128", dict(n_layer=4, n_head=4, n_embd=128, block_size=64)),
                        ("6x384", dict(n_layer=6, n_head=6, n_embd=384, block_size=256))):
        mha_kv = None
        for s in sorted({1, 2, base["n_head"]}):
            config = GPTConfig(vocab_size=65, bias=False, n_headgroup=s, **base)
            params = GPT(config).num_params()
            kv = config.kv_cache_bytes_per_token()
            mha_kv = mha_kv or kv
            assert kv * s == mha_kv, "the KV cache of GQA must be exactly 1/S of MHA's"
            name = "MHA" if s == 1 else ("MQA" if s == base["n_head"] else f"GQA S={s}")
            print(f"| {label} | {name} | {config.n_kv_head} | {params:,} | {kv:,} | 1/{s} |")


def tokens_per_s(model, new_tokens, bf16: bool = False, **kwargs) -> float:
    idx = torch.zeros((1, 1), dtype=torch.long)
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model.generate(idx, new_tokens, top_k=1, **kwargs)
    return new_tokens / (time.perf_counter() - t0)


def generation(rounds: int, inside_block_only: bool = False, bf16: bool = False):
    print(f"\n## Generation, 6x384, block_size 256, batch 1, {'bf16 autocast' if bf16 else 'fp32'} (tokens/s)\n")
    models = {name: GPT(GPTConfig(vocab_size=65, n_layer=6, n_head=6, n_embd=384, block_size=256, bias=False,
                                  n_headgroup=s)).eval() for name, s in (("MHA", 1), ("GQA S=2", 2), ("MQA", 6))}
    cases = {"250 no cache": (250, dict(kv_cache=False)), "250 cache": (250, dict(kv_cache=True)),
             "500 no cache": (500, dict(kv_cache=False)),
             "500 cache exact": (500, dict(kv_cache=True, cache_overflow="exact")),
             "500 cache half": (500, dict(kv_cache=True, cache_overflow="half"))}
    if inside_block_only:  # --cases=250: the cache's speed-up alone, without the slow past-the-block cases
        cases = {k: v for k, v in cases.items() if k.startswith("250")}
    results = {(m, c): [] for m in models for c in cases}
    with torch.no_grad():
        for name, model in models.items():
            tokens_per_s(model, 20, bf16, kv_cache=True)  # warm up
        for _ in range(rounds):
            for case, (n, kwargs) in cases.items():
                for name, model in models.items():
                    results[(name, case)].append(tokens_per_s(model, n, bf16, **kwargs))
    med = {k: statistics.median(v) for k, v in results.items()}
    print("| attention | " + " | ".join(cases) + " | cache speed-up (250) |")
    print("|---|" + "---:|" * (len(cases) + 1))
    for name in models:
        cells = [f"{med[(name, c)]:.0f}" for c in cases]
        print(f"| {name} | " + " | ".join(cells) + f" | {med[(name, '250 cache')] / med[(name, '250 no cache')]:.1f}x |")


def decode_attention(rounds: int):
    print("\n## One decode step of attention: 1 query vs 256 cached keys, 6 heads x 64, batch 8 (ms)\n")
    print("| n_kv_head | SDPA enable_gqa | repeat_interleave + SDPA |")
    print("|---:|---:|---:|")
    for n_kv in (6, 3, 1):
        q = torch.randn(8, 6, 1, 64)
        k, v = torch.randn(8, n_kv, 256, 64), torch.randn(8, n_kv, 256, 64)
        direct = lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=n_kv < 6)
        copied = lambda: F.scaled_dot_product_attention(q, k.repeat_interleave(6 // n_kv, 1),
                                                        v.repeat_interleave(6 // n_kv, 1))
        times = {"direct": [], "copied": []}
        for _ in range(rounds):
            for key, fn in (("direct", direct), ("copied", copied)):
                for _ in range(20):
                    fn()
                t0 = time.perf_counter()
                for _ in range(200):
                    fn()
                times[key].append((time.perf_counter() - t0) / 200 * 1000)
        print(f"| {n_kv} | {statistics.median(times['direct']):.3f} | {statistics.median(times['copied']):.3f} |")


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    options = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    rounds = int(options.get("rounds", 3))
    if "threads" in options:
        torch.set_num_threads(int(options["threads"]))
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {rounds} rounds\n")
    inside_block_only, bf16 = options.get("cases") == "250", options.get("dtype") == "bfloat16"
    parts = {"sizes": sizes, "generation": lambda: generation(rounds, inside_block_only, bf16),
             "decode": lambda: decode_attention(rounds)}
    for name, part in parts.items():
        if options.get("only", name) == name:
            part()
