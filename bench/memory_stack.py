"""The memory-stack tables of docs/memory_stack.md (read in docs/memory.md): the estimated peak of one
training step with each technique of the stack added in turn (activation checkpointing, chunked
loss, optimizer step in the backward), for GPT-2 124M (batch 8) and a GPT-2 XL shape (1.5B,
batch 1), fp32 and bf16 autocast, per optimizer variant.

    python bench/memory_stack.py [--out=docs] [--variants=adamw,adamw8bit]

Writes OUT/memory_stack.md and OUT/memory_stack.json and prints the tables; with --variants, only
those are estimated again and the other rows are kept from OUT/memory_stack.json. Every number is
`leangpt memory --stack=True` with the same keys (fake tensors; the GPT-2 shapes as CUDA configs);
tests/test_memory_stack.py checks such estimates against real measurements at the seed and 6x384
sizes. adamw8bit's step is torch.compile'd and not run here: its state is made with torchao's own
buffer constructor (leangpt.memory.StateOnlyStep), and what its compiled update allocates inside
is not counted.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from leangpt.formatting import format_bytes
from leangpt.memory import MemoryConfig, stack_overrides, step_memory

SIZES = {
    "GPT-2 124M (12x768, block 1024, batch 8)": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024,
                                                     batch_size=8),
    "GPT-2 XL shape, 1.56B (48x1600, block 1024, batch 1)": dict(n_layer=48, n_head=25, n_embd=1600,
                                                                  block_size=1024, batch_size=1),
}
VARIANTS = ("adamw", "adamsn", "adafactor", "adamsnsm", "adamw8bit")
DTYPES = ("float32", "bfloat16")
CATEGORIES = ("params", "grads", "optimizer_state", "activations", "temporaries")
GiB = 2**30


def main(argv: list[str]) -> None:
    out = Path(next((a.split("=", 1)[1] for a in argv if a.startswith("--out=")), "docs"))
    chosen = next((a.split("=", 1)[1].split(",") for a in argv if a.startswith("--variants=")), list(VARIANTS))
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        sys.exit(f"error: --variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    try:  # the rows of variants not rerun are kept
        kept = [r for r in json.loads((out / "memory_stack.json").read_text()) if r["variant"] not in chosen]
    except (OSError, ValueError):
        kept = []
    results = []
    for size, shape in SIZES.items():
        for dtype in DTYPES:
            for variant in chosen:
                base = MemoryConfig(**shape, vocab_size=50304, device="cuda", dtype=dtype, compile=False,
                                    gradient_accumulation_steps=1, optimizer_variant=variant,
                                    adamsnsm_rank=shape["n_embd"] // 4)
                for row in stack_overrides():
                    started = time.perf_counter()
                    config = dataclasses.replace(base, **{k: v for k, v in row.items() if k != "technique"})
                    b = step_memory(config).as_dict()
                    results.append({"size": size, "dtype": dtype, "variant": variant, "technique": row["technique"],
                                    **b, "seconds": round(time.perf_counter() - started, 1)})
                    print(size, dtype, variant, row["technique"], f"{b['peak'] / GiB:.2f} GiB", flush=True)
    results = sorted(kept + results, key=lambda r: (list(SIZES).index(r["size"]), DTYPES.index(r["dtype"]),
                                                    VARIANTS.index(r["variant"])))  # stable: techniques keep their order
    lines = render(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory_stack.md").write_text("\n".join(lines))
    (out / "memory_stack.json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))


def render(results: list[dict]) -> list[str]:
    lines = ["# The memory stack, estimated", "",
             "Written by `python bench/memory_stack.py`; each row adds one technique to the rows above it. "
             "Bytes alive at the peak of one steady-state step (`leangpt memory --stack=True`), "
             "vocabulary 50304, one micro-batch, grad_clip 1.0 (clipped exactly: docs/memory.md). "
             "adamw8bit's state is torchao's own buffers; the temporaries inside its compiled update "
             "are not seen (docs/memory.md). grads `0 B`: no gradient is alive at that peak (it comes at the start "
             "of backward, before the first gradient exists; with the optimizer in backward each is freed as soon as "
             "its weight is stepped).", ""]
    for size in SIZES:
        for dtype in DTYPES:
            rows = [r for r in results if r["size"] == size and r["dtype"] == dtype]
            if not rows:
                continue
            lines += [f"## {size}, {dtype}", "",
                      "| variant | technique | weights | grads | opt. state | activations | temporaries | peak | "
                      "vs plain AdamW | vs plain |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            reference = next((r["peak"] for r in rows if r["variant"] == "adamw"), rows[0]["peak"])
            for r in rows:
                plain = next(x["peak"] for x in rows if x["variant"] == r["variant"])
                cells = [r["variant"], r["technique"], *(format_bytes(r[c]) for c in CATEGORIES),
                         format_bytes(r["peak"]), f"{r['peak'] / reference:.3f}x", f"{r['peak'] / plain:.3f}x"]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    return lines


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    main(sys.argv[1:])
