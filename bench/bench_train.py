"""Training speed: leangpt's trainer beside a plain-PyTorch GPT step of the same size, in one run,
or beside an upstream nanoGPT checkout.

    python bench/bench_train.py config/train_shakespeare_char.py --device=cpu --compile=False \
        --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --dropout=0.0 [--iters=200]
    python bench/bench_train.py --nanogpt=PATH/TO/nanoGPT [--iters=300] [--rounds=3] [--data_dir=data] \
        config/train_shakespeare_char.py --device=cpu --compile=False ... (the same training arguments)

With --nanogpt, the checkout's own train.py and leangpt's train.py run the same command line as
subprocesses, alternating, `--rounds` times (nanoGPT in a scratch directory whose data/<dataset>
points at leangpt's prepared dataset; its config file is leangpt's copy of the one named). Each
prints nanoGPT's `iter N: loss L, time T ms` lines: the medians of T after the first 5 iterations
are compared (the iterations that also evaluate are in both). The checkout is the user's: nothing
of nanoGPT is vendored here.

The baseline is the minimum a GPT training step does (nanoGPT's architecture written plainly:
embedding, blocks with SDPA attention and a GELU MLP, cross-entropy, backward, clip, AdamW),
fed by the same memmap batches. Both run `--iters` steps, alternating, `--rounds` times;
the script prints median ms/iter, tokens/s and the ratio leangpt / baseline (< 1 is faster).
Timings on shared CPUs are noisy: compare the ratio, not absolute numbers across machines.
"""

from __future__ import annotations

import dataclasses
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leangpt.config import TrainConfig, parse_config  # noqa: E402
from leangpt.data import BatchSampler, dataset_paths, load_dataset_meta  # noqa: E402
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
    meta = load_dataset_meta(paths)  # any tokenizer, or nanoGPT's data without meta.pkl
    vocab = meta["vocab_size"]
    model = PlainGPT(vocab, config.block_size, config.n_embd, config.n_layer, config.n_head).to(config.device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    sampler = BatchSampler(paths["train"], config.block_size, config.batch_size, seed=0, dtype=meta.get("dtype", "uint16"))
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


ITER_LINE = re.compile(r"^iter (\d+): loss [\d.]+, time ([\d.]+)ms")
REPO = Path(__file__).resolve().parents[1]


def median_iter_ms(cmd: list[str], cwd: Path) -> float:
    """Run one training command; the median of its logged per-iteration times after iteration 5."""
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} ... failed:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
    times = [float(m.group(2)) for line in done.stdout.splitlines() if (m := ITER_LINE.match(line)) and int(m.group(1)) >= 5]
    if not times:
        sys.exit(f"no 'iter N: loss L, time T ms' lines in the output of {' '.join(cmd[:3])}")
    return statistics.median(times)


def compare_with_nanogpt(nanogpt: Path, train_args: list[str], data_dir: str, iters: int, rounds: int) -> None:
    if not (nanogpt / "train.py").is_file() or not (nanogpt / "model.py").is_file():
        sys.exit(f"--nanogpt={nanogpt}: no train.py and model.py there (give the root of a nanoGPT checkout)")
    config = parse_config(TrainConfig, [*train_args, f"--data_dir={data_dir}"])
    dataset = Path(data_dir).resolve() / config.dataset
    if not (dataset / "train.bin").is_file():
        sys.exit(f"{dataset} is not prepared: run python data/{config.dataset}/prepare.py first")
    # config files are leangpt's copies (the same assignments nanoGPT's configurator executes)
    args = [str((REPO / a).resolve()) if a.endswith(".py") and not a.startswith("--") else a for a in train_args]
    args += [f"--max_iters={iters}"]
    tokens = config.batch_size * config.block_size * config.gradient_accumulation_steps
    env_note = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"nanoGPT {nanogpt} vs leangpt, {iters} iters x {rounds} rounds, OMP_NUM_THREADS={env_note}")
    times = {"nanoGPT": [], "leangpt": []}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "data").mkdir()
        (work / "data" / config.dataset).symlink_to(dataset)
        for _ in range(rounds):
            times["nanoGPT"].append(median_iter_ms(
                [sys.executable, str(nanogpt / "train.py"), *args, f"--out_dir={work / 'out-nanogpt'}"], work))
            times["leangpt"].append(median_iter_ms(
                [sys.executable, str(REPO / "train.py"), *args, f"--out_dir={work / 'out-leangpt'}",
                 f"--data_dir={work / 'data'}"], work))
    n, o = statistics.median(times["nanoGPT"]), statistics.median(times["leangpt"])
    print(f"{'':10s} {'ms/iter':>9s} {'tokens/s':>10s}   rounds (ms/iter)")
    for name, value in (("nanoGPT", n), ("leangpt", o)):
        print(f"{name:10s} {value:9.2f} {tokens / value * 1000:10.0f}   {', '.join(f'{t:.2f}' for t in times[name])}")
    print(f"ratio leangpt/nanoGPT: {o / n:.3f}")


def main(argv: list[str]) -> None:
    iters = int(next((a.split("=", 1)[1] for a in argv if a.startswith("--iters=")), 200))
    rounds = int(next((a.split("=", 1)[1] for a in argv if a.startswith("--rounds=")), 3))
    nanogpt = next((a.split("=", 1)[1] for a in argv if a.startswith("--nanogpt=")), None)
    own = ("--iters=", "--rounds=", "--nanogpt=")
    if nanogpt:
        data_dir = next((a.split("=", 1)[1] for a in argv if a.startswith("--data_dir=")), "data")
        train_args = [a for a in argv if not a.startswith((*own, "--data_dir="))]
        compare_with_nanogpt(Path(nanogpt).expanduser().resolve(), train_args, data_dir, iters, rounds)
        return
    config = parse_config(TrainConfig, [a for a in argv if not a.startswith(own)])
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
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    main(sys.argv[1:])
