"""A GPT-2 XL-shaped model (48x1600, block 1024, vocabulary 50304, 1.56B parameters) trained for a few
real steps on this machine's CPU with a memory-reduced optimizer and the memory stack, beside what
AdamW without the stack would need.

    python bench/stack_demo.py [--variants=adafactor,adamsn] [--iters=3] [--out=docs] [--lr_VARIANT=LR]

Needs the prepared tinyshakespeare (python data/shakespeare_char/prepare.py): its character ids are
trained as ids of a 50304-token vocabulary (a scratch dataset whose meta.pkl has 50304 entries), so
the output layer, the loss and the tied embedding have GPT-2's shapes. For AdamW without the stack
the script prints the estimate and runs `leangpt memory --measure=True`, which must refuse before
allocating. For each variant, in fresh processes: `leangpt memory --measure=True` with the stack
(the tracker's peak of one steady-state step, by category), then `train.py` for `--iters` iterations
(its losses and the process's max RSS from metrics.jsonl). Writes OUT/stack_demo.md and
OUT/stack_demo.json; the variants of an earlier OUT/stack_demo.json that this run does not train
are kept in both.
"""

from __future__ import annotations

import json
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from leangpt.formatting import format_bytes  # noqa: E402
from leangpt.metrics import read_metrics  # noqa: E402

VOCAB = 50304
SHAPE = ["--n_layer=48", "--n_head=25", "--n_embd=1600", "--block_size=1024", "--batch_size=1",
         "--gradient_accumulation_steps=1", "--dropout=0.0", "--device=cpu", "--dtype=float32", "--compile=False",
         "--grad_clip=0.0"]  # exact clipping would double each step's time (a measuring pass), not its peak
STACK = ["--activation_checkpointing=True", "--chunked_loss=True", "--optimizer_in_backward=True"]
# a few steps from scratch, warming up to a rate near each variant's usual one at this size
LEARNING_RATE = {"adafactor": 1e-2, "adamsn": 1e-3, "adamw": 6e-4, "adamsnsm": 1e-3}
CATEGORIES = ("params", "grads", "optimizer_state", "activations", "temporaries")


def scratch_dataset(root: Path) -> Path:
    """tinyshakespeare's ids under a 50304-entry meta.pkl (ids past 64 never occur)."""
    source = ROOT / "data" / "shakespeare_char"
    if not (source / "meta.pkl").is_file():
        sys.exit("error: prepare the dataset first: python data/shakespeare_char/prepare.py")
    with open(source / "meta.pkl", "rb") as f:
        meta = pickle.load(f)
    # supplementary-plane code points stand in for the unused ids: distinct, never in the text
    itos = {**meta["itos"], **{i: chr(0x10000 + i) for i in range(meta["vocab_size"], VOCAB)}}
    out = root / "data" / "gpt2_vocab_chars"
    out.mkdir(parents=True)
    for split in ("train.bin", "val.bin"):
        shutil.copy(source / split, out / split)
    with open(out / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": VOCAB, "itos": itos, "stoi": {c: i for i, c in itos.items()}}, f)
    return root / "data"


def leangpt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leangpt", *args], cwd=ROOT, capture_output=True, text=True)


def memory_row(variant: str, options: list[str], measure: bool) -> dict:
    done = leangpt("memory", *SHAPE, f"--vocab_size={VOCAB}", f"--optimizer_variant={variant}", *options,
                   f"--measure={measure}", "--json")
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout)[0]


def train_row(variant: str, data_dir: Path, iters: int) -> dict:
    out = data_dir.parent / f"out-{variant}"
    started = time.time()
    done = subprocess.run([sys.executable, "train.py", "config/train_shakespeare_char.py", *SHAPE, *STACK,
                           f"--data_dir={data_dir}", "--dataset=gpt2_vocab_chars", f"--out_dir={out}",
                           f"--optimizer_variant={variant}", f"--learning_rate={LEARNING_RATE[variant]}",
                           # a linear warmup over the run: without it the first steps of a model
                           # this size overshoot (the loss falls, then comes back)
                           f"--warmup_iters={iters}", f"--lr_decay_iters={10 * iters}",
                           f"--min_lr={LEARNING_RATE[variant] / 10}", f"--max_iters={iters}",
                           f"--eval_interval={iters}", "--eval_iters=2", "--log_interval=1"],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    records = read_metrics(out / "metrics.jsonl")
    end = next(r for r in records if r["kind"] == "end")
    evals = [r for r in records if r["kind"] == "eval"]
    row = {"losses": [round(r["loss"], 4) for r in records if r["kind"] == "train"],
           "val_loss_first": evals[0]["val_loss"], "val_loss_last": evals[-1]["val_loss"],
           "max_rss_bytes": end["max_rss_bytes"], "median_s_per_iter": end["median_ms_per_iter"] / 1000,
           "wall_s": round(time.time() - started)}
    shutil.rmtree(out)  # its checkpoints are gigabytes
    return row


def main(argv: list[str]) -> None:
    if "--help" in argv or "-h" in argv:
        print(__doc__)
        return
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    variants = opts.get("variants", "adafactor,adamsn").split(",")
    iters, out_dir = int(opts.get("iters", 3)), Path(opts.get("out", "docs"))
    for variant in variants:
        LEARNING_RATE[variant] = float(opts.get(f"lr_{variant}", LEARNING_RATE[variant]))
    earlier = json.loads((out_dir / "stack_demo.json").read_text()) if (out_dir / "stack_demo.json").is_file() else {}
    kept = [v for v, row in earlier.items() if v not in variants and isinstance(row, dict) and "training" in row]
    result: dict = {**{v: earlier[v] for v in kept}, "adamw_plain_estimate": memory_row("adamw", [], measure=False)}
    started = time.time()
    result["adamw_plain_measure"] = memory_row("adamw", [], measure=True)
    result["adamw_plain_measure"].update(seconds=round(time.time() - started, 1),
                                         max_rss_bytes=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
    print(json.dumps(result, indent=1), flush=True)
    with tempfile.TemporaryDirectory(dir=opts.get("scratch")) as tmp:
        data_dir = scratch_dataset(Path(tmp))
        for variant in variants:
            result[variant] = {"estimate": memory_row(variant, STACK, measure=False),
                               "measured": memory_row(variant, STACK, measure=True),
                               "training": train_row(variant, data_dir, iters),
                               "learning_rate": LEARNING_RATE[variant], "iters": iters,
                               "schedule": f"linear warmup over the {iters} iterations"}
            print(variant, json.dumps(result[variant], indent=1), flush=True)
            done = kept + [v for v in variants if v in result]
            result["variants"] = done
            out_dir.mkdir(parents=True, exist_ok=True)  # after each variant: a stopped run keeps what it measured
            (out_dir / "stack_demo.json").write_text(json.dumps(result, indent=1) + "\n")
            (out_dir / "stack_demo.md").write_text(markdown(result, done))
    print((out_dir / "stack_demo.md").read_text())


def markdown(result: dict, variants: list[str]) -> str:
    plain, refusal = result["adamw_plain_estimate"], result["adamw_plain_measure"]
    lines = ["# A 1.56B GPT on a 24 GB CPU machine", "",
             "Written by `python bench/stack_demo.py`: GPT-2 XL's shape (48x1600, block 1024, vocabulary 50304, "
             "batch 1, fp32, grad_clip 0: exact clipping adds a measuring pass that doubles a step's time but not its "
             "peak) on this machine's CPU.", "",
             f"AdamW without the stack: estimated peak **{format_bytes(plain['peak'])}** "
             f"(weights {format_bytes(plain['params'])}, grads {format_bytes(plain['grads'])}, "
             f"state {format_bytes(plain['optimizer_state'])}). `--measure=True` answered "
             f"`{refusal.get('error', 'no refusal')}` after {refusal['seconds']} s, its process's max RSS "
             f"{format_bytes(refusal['max_rss_bytes'])}.", "",
             "With activation checkpointing, the chunked loss and the optimizer step in the backward pass "
             f"(`{' '.join(STACK)}`):", "",
             "| variant | estimated peak | measured peak | weights | grads | opt. state | activations | temporaries "
             "| max RSS of training | s/iter | train losses, iter 0.. | val loss before -> after |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for v in variants:
        e, m, t = result[v]["estimate"], result[v]["measured"], result[v]["training"]
        if "error" in m or "error" in t:
            lines.append(f"| {v} | {format_bytes(e.get('peak', 0))} | {m.get('error', '')} {t.get('error', '')} |")
            continue
        lines.append(f"| {v} | {format_bytes(e['peak'])} | {format_bytes(m['peak'])} | "
                     + " | ".join(format_bytes(m[c]) for c in CATEGORIES)
                     + f" | {format_bytes(t['max_rss_bytes'])} | {t['median_s_per_iter']:.0f} | "
                     + ", ".join(f"{x:.3f}" for x in t["losses"])
                     + f" | {t['val_loss_first']:.3f} -> {t['val_loss_last']:.3f} |")
    lines += ["", "Each variant trains from scratch ("
              + "; ".join(f"{v}: {result[v]['iters']} iterations, lr {result[v]['learning_rate']:g}, "
                          f"{result[v]['schedule']}" for v in variants)
              + "); the validation loss averages 2 batches before the first step and after the last.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
