"""Training speed: leangpt's trainer beside a plain-PyTorch GPT step of the same size, in one run.

    python bench/bench_train.py config/train_shakespeare_char.py --device=cpu --compile=False \
        --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --dropout=0.0 [--iters=200]

The baseline is the minimum a GPT training step does (nanoGPT's architecture written plainly:
embedding, blocks with SDPA attention and a GELU MLP, cross-entropy, backward, clip, AdamW),
fed by the same memmap batches. Both run `--iters` steps, alternating, `--rounds` times;
the script prints median ms/iter, tokens/s and the ratio leangpt / baseline (< 1 is faster).
Timings on shared CPUs are noisy: compare the ratio, not absolute numbers across machines.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leangpt.config import TrainConfig, parse_config  # noqa: E402
from leangpt.data import BatchSampler, dataset_paths, load_meta  # noqa: E402
from leangpt.metrics import read_metrics  # noqa: E402
from leangpt.train import train  # noqa: E402


class PlainBlock(nn.Module):
    def __init__(self, c: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln1, self.ln2 = nn.LayerNorm(c, bias=False), nn.LayerNorm(c, bias=False)
        self.qkv, self.out = nn.Linear(c, 3 * c, bias=False), nn.Linear(c, c, bias=False)
        self.up, self.down = nn.Linear(c, 4 * c, bias=False), nn.Linear(4 * c, c, bias=False)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_head, -1).transpose(1, 2) for z in self.qkv(self.ln1(x)).split(c, 2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.out(y)
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class PlainGPT(nn.Module):
    def __init__(self, vocab: int, block: int, c: int, n_layer: int, n_head: int):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, c), nn.Embedding(block, c)
        self.blocks = nn.ModuleList(PlainBlock(c, n_head) for _ in range(n_layer))
        self.ln, self.head = nn.LayerNorm(c, bias=False), nn.Linear(c, vocab, bias=False)
        self.tok.weight = self.head.weight

    def forward(self, idx, targets):
        x = self.tok(idx) + self.pos(torch.arange(idx.size(1), device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def time_baseline(config: TrainConfig, iters: int) -> float:
    paths = dataset_paths(config.data_dir, config.dataset)
    vocab = load_meta(paths["meta"])["vocab_size"]
    model = PlainGPT(vocab, config.block_size, config.n_embd, config.n_layer, config.n_head).to(config.device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    sampler = BatchSampler(paths["train"], config.block_size, config.batch_size, seed=0)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        x, y = (t.to(config.device) for t in sampler.next_batch())
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times[5:])


def time_leangpt(config: TrainConfig, iters: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        run = dataclasses.replace(config, out_dir=out, max_iters=iters, lr_decay_iters=max(iters, config.warmup_iters + 1),
                                  eval_interval=10 * iters, eval_iters=1, log_interval=1, init_from="scratch")
        train(run, log=lambda _: None)
        ms = [r["ms"] for r in read_metrics(Path(out) / "metrics.jsonl") if r["kind"] == "train"]
    return statistics.median(ms[5:])


def main(argv: list[str]) -> None:
    iters = int(next((a.split("=", 1)[1] for a in argv if a.startswith("--iters=")), 200))
    rounds = int(next((a.split("=", 1)[1] for a in argv if a.startswith("--rounds=")), 3))
    config = parse_config(TrainConfig, [a for a in argv if not a.startswith(("--iters=", "--rounds="))])
    tokens = config.batch_size * config.block_size * config.gradient_accumulation_steps
    print(f"model {config.n_layer}x{config.n_embd}, {config.n_head} heads (n_headgroup={config.n_headgroup}), "
          f"batch {config.batch_size}x{config.block_size}, {config.optimizer_variant}, "
          f"{torch.get_num_threads()} threads, {iters} iters x {rounds} rounds")
    base, ours = [], []
    for _ in range(rounds):
        base.append(time_baseline(config, iters))
        ours.append(time_leangpt(config, iters))
    b, o = statistics.median(base), statistics.median(ours)
    print(f"{'':10s} {'ms/iter':>9s} {'tokens/s':>10s}")
    print(f"{'baseline':10s} {b:9.2f} {tokens / b * 1000:10.0f}")
    print(f"{'leangpt':10s} {o:9.2f} {tokens / o * 1000:10.0f}")
    print(f"ratio leangpt/baseline: {o / b:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
