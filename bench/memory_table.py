"""The tables of docs/memory_tables.md (read in docs/memory.md): estimated step memory across optimizers, GQA, ZeRO and
activation checkpointing, for the seed model and GPT-2 124M / 350M shapes, fp32 and bf16.

    python bench/memory_table.py [--out=docs]

Writes OUT/memory_tables.md (the tables), OUT/memory_table.json (every number) and
OUT/memory_breakdown.png (stacked bars), and prints the tables. Every number is an estimate of
`leangpt memory` (fake tensors, CPU kernels; the GPT-2 sizes as a CUDA config, whose bf16 attention
stays bf16); tests/test_memory.py checks such estimates against real measurements of the seed and
6x384 models.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from leangpt.memory import MemoryConfig, step_memory
from leangpt.formatting import format_bytes

# the device each size is trained on: bf16 attention differs (fp32 on CPU, see attention.py)
SIZES = {
    "seed (4x128, block 64, batch 12, vocab 65)": dict(n_layer=4, n_head=4, n_embd=128, block_size=64,
                                                       batch_size=12, vocab_size=65, device="cpu"),
    "GPT-2 124M (12x768, block 1024, batch 8)": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024,
                                                     batch_size=8, vocab_size=50304, device="cuda"),
    "GPT-2 350M (24x1024, block 1024, batch 8)": dict(n_layer=24, n_head=16, n_embd=1024, block_size=1024,
                                                      batch_size=8, vocab_size=50304, device="cuda"),
}
VARIANTS = ("adamw", "adam", "adamsn", "adafactor")
SETTINGS = {  # name -> keys; every rank runs one micro-batch per step
    "MHA": {},
    "GQA S=4": {"n_headgroup": 4},
    "ZeRO, 8 ranks": {"zero": True, "world_size": 8, "gradient_accumulation_steps": 8},
    "act. checkpointing": {"activation_checkpointing": True},
}
CATEGORIES = ("params", "grads", "optimizer_state", "activations", "temporaries")


def estimate(size: dict, variant: str, setting: dict, dtype: str) -> dict:
    config = MemoryConfig(**{"gradient_accumulation_steps": 1, "dropout": 0.0, **size, **setting},
                          optimizer_variant=variant, dtype=dtype)
    return step_memory(config).as_dict()


def main(argv: list[str]) -> int:
    out = Path(next((a.split("=", 1)[1] for a in argv if a.startswith("--out=")), "docs"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rows = []
    for size_name, size in SIZES.items():
        for variant in VARIANTS:
            for setting_name, setting in SETTINGS.items():
                row = {"size": size_name, "optimizer": variant, "setting": setting_name}
                for dtype in ("float32", "bfloat16"):
                    row[dtype] = estimate(size, variant, setting, dtype)
                rows.append(row)
                print(f"  {size_name}: {variant}, {setting_name}", file=sys.stderr)
    (out / "memory_table.json").write_text(json.dumps(rows, indent=1) + "\n")
    text = tables(rows)
    (out / "memory_tables.md").write_text(text)
    plot(rows, out / "memory_breakdown.png")
    print(text)
    print(f"({len(rows) * 2} estimates in {time.time() - started:.0f} s)", file=sys.stderr)
    return 0


def tables(rows: list[dict]) -> str:
    lines = []
    for size_name in SIZES:
        part = [r for r in rows if r["size"] == size_name]
        base = part[0]  # AdamW, MHA
        lines += [f"**{size_name}**, fp32 breakdown of the peak, and the peak in bf16 autocast:", "",
                  "| optimizer | setting | weights | grads | opt. state | activations | temporaries | fp32 peak "
                  "| vs AdamW MHA | peak in | bf16 peak | vs AdamW MHA |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
        for r in part:
            f, b = r["float32"], r["bfloat16"]
            cells = [r["optimizer"], r["setting"], *(format_bytes(f[c]) for c in CATEGORIES), format_bytes(f["peak"]),
                     f"{f['peak'] / base['float32']['peak']:.2f}x", f["peak_phase"], format_bytes(b["peak"]),
                     f"{b['peak'] / base['bfloat16']['peak']:.2f}x"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(SIZES), figsize=(18, 6))
    for ax, size_name in zip(axes, SIZES):
        part = [r for r in rows if r["size"] == size_name]
        scale, unit = (2**30, "GiB") if part[0]["float32"]["peak"] > 2**30 else (2**20, "MiB")
        bottoms = [0.0] * len(part)
        for category in CATEGORIES:
            heights = [r["float32"][category] / scale for r in part]
            ax.bar(range(len(part)), heights, bottom=bottoms, label=category.replace("_", " "))
            bottoms = [x + h for x, h in zip(bottoms, heights)]
        ax.set_xticks(range(len(part)), [f"{r['optimizer']}, {r['setting']}" for r in part], rotation=70,
                      ha="right", fontsize=8)
        ax.set_ylabel(f"{unit} alive at the step's peak (fp32)")
        ax.set_title(size_name, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=len(CATEGORIES), fontsize=9)
    fig.suptitle("Peak memory of one training step, by category (estimated by leangpt memory)", x=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
