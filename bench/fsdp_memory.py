"""The per-rank tables of docs/fsdp.md: one rank's estimated peak of a training step under DDP and
under FSDP on 8 ranks, for GPT-2 124M, 350M and the 1.5B XL shape, every variant that runs on
shards, without and with the memory stack (activation checkpointing + chunked loss; the step
inside the backward does not run under FSDP).

    python bench/fsdp_memory.py [--out=docs] [--sizes=124M,350M,1.5B]

Every number is `leangpt memory` with the same keys (fake tensors, a fake 8-rank process group,
the shapes as CUDA bfloat16 configs: FSDP2 gathers bfloat16 weights and reduces in float32).
tests/test_fsdp.py checks such estimates against a real 2-rank measurement. Also counted, on the
same runs: the bytes one rank passes to each collective in one step (FSDP's all-gathers of the
weights and reduce-scatters of the gradients, and the optimizer's own all-reduces), and the target
of issue 21: Adafactor + activation checkpointing at the XL shape, FSDP against DDP. Writes
OUT/fsdp_memory.md and OUT/fsdp_memory.json and prints the tables.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

from leangpt.formatting import format_bytes
from leangpt.memory import MemoryConfig, step_memory
from leangpt.variants import VARIANTS

WORLD = 8
SIZES = {
    "124M": dict(n_layer=12, n_head=12, n_embd=768, batch_size=8),
    "350M": dict(n_layer=24, n_head=16, n_embd=1024, batch_size=4),
    "1.5B": dict(n_layer=48, n_head=25, n_embd=1600, batch_size=1),
}
STACK = dict(activation_checkpointing=True, chunked_loss=True)
EXACT = [name for name, v in VARIANTS.items() if not v.fsdp_refusal]


COLLECTIVES = ("all_gather_single", "reduce_scatter_single", "all_reduce", "broadcast")


@contextlib.contextmanager
def counting_collectives(counts: dict):
    """Adds to counts[name] the bytes of each call's larger buffer: what an all-gather receives,
    what a reduce-scatter sends, what an all-reduce reduces."""
    import torch.distributed as dist
    originals = {name: getattr(dist, name) for name in COLLECTIVES}

    def counted(name):
        def call(*args, **kwargs):
            tensors = [t for t in (*args, *kwargs.values()) if hasattr(t, "numel")]
            counts[name] = counts.get(name, 0) + max(t.numel() * t.element_size() for t in tensors)
            return originals[name](*args, **kwargs)
        return call

    from leangpt.optim import shards
    gather_rows = shards.gather_rows

    def counted_gather(block, p):  # a whole-matrix method's all-gather (Muon's, an owner's), through DTensor
        whole = gather_rows(block, p)
        counts["gather_rows"] = counts.get("gather_rows", 0) + whole.numel() * whole.element_size()
        return whole

    for name in COLLECTIVES:
        setattr(dist, name, counted(name))
    shards.gather_rows = counted_gather
    try:
        yield counts
    finally:
        for name, fn in originals.items():
            setattr(dist, name, fn)
        shards.gather_rows = gather_rows


def estimate(shape: dict, variant: str, fsdp: bool, stack: bool, **keys) -> tuple[int, dict]:
    """One rank's peak, and the bytes per collective of one step (the estimate runs two alike)."""
    config = MemoryConfig(**shape, block_size=1024, vocab_size=50304, device="cuda", dtype="bfloat16",
                          compile=False, gradient_accumulation_steps=WORLD, world_size=WORLD, fsdp=fsdp,
                          optimizer_variant=variant, **(STACK if stack else {}), **keys)
    with counting_collectives({}) as counts:
        peak = step_memory(config).peak
    return peak, {name: n // 2 for name, n in counts.items()}


def main(argv: list[str]) -> None:
    out = Path(next((a.split("=", 1)[1] for a in argv if a.startswith("--out=")), "docs"))
    sizes = next((a.split("=", 1)[1].split(",") for a in argv if a.startswith("--sizes=")), list(SIZES))
    rows = []
    for size in sizes:
        for variant in EXACT:
            row = {"size": size, "variant": variant}
            for fsdp in (False, True):
                for stack in (False, True):
                    started = time.perf_counter()
                    key = f"{'fsdp' if fsdp else 'ddp'}{'_stack' if stack else ''}"
                    row[key], comms = estimate(SIZES[size], variant, fsdp, stack)
                    if fsdp and not stack:
                        row["communication"] = comms
                    print(f"{size} {variant} {key}: {format_bytes(row[key])} ({time.perf_counter() - started:.0f} s)",
                          file=sys.stderr, flush=True)
            rows.append(row)
    target = {key: estimate(SIZES["1.5B"], "adafactor", fsdp, False, activation_checkpointing=True)[0]
              for key, fsdp in (("ddp", False), ("fsdp", True))}
    table = render(rows, target)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fsdp_memory.json").write_text(json.dumps({"rows": rows, "xl_adafactor_checkpointing": target},
                                                     indent=1) + "\n")
    (out / "fsdp_memory.md").write_text(table + "\n")


def render(rows: list[dict], target: dict) -> str:
    lines = [f"One rank's peak of a training step on {WORLD} ranks (bfloat16 on CUDA, block 1024, micro-batch "
             "8 / 4 / 1 sequences per rank):", "",
             "| model | variant | DDP | DDP + stack | FSDP | FSDP + stack | FSDP + stack vs DDP |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['variant']} | {format_bytes(r['ddp'])} | {format_bytes(r['ddp_stack'])} | "
                     f"{format_bytes(r['fsdp'])} | {format_bytes(r['fsdp_stack'])} | "
                     f"{r['fsdp_stack'] / r['ddp']:.3f}x |")
    lines += ["", "Bytes one rank hands to each collective in one FSDP step (without the stack):", "",
              "| model | variant | all-gathered weights | reduce-scattered gradients | optimizer all-reduces | "
              "optimizer all-gathers | owners' broadcasts |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        c = r["communication"]
        lines.append(f"| {r['size']} | {r['variant']} | {format_bytes(c.get('all_gather_single', 0))} | "
                     f"{format_bytes(c.get('reduce_scatter_single', 0))} | {format_bytes(c.get('all_reduce', 0))} | "
                     f"{format_bytes(c.get('gather_rows', 0))} | {format_bytes(c.get('broadcast', 0))} |")
    lines += ["", f"XL shape, Adafactor + activation checkpointing, {WORLD} ranks: DDP {format_bytes(target['ddp'])}, "
              f"FSDP {format_bytes(target['fsdp'])} per rank ({target['fsdp'] / target['ddp']:.3f}x, "
              f"1/{target['ddp'] / target['fsdp']:.1f})."]
    return "\n".join(lines)


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    main(sys.argv[1:])
