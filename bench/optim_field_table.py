"""The optimizer-field table and plot (docs/optim_field.md), from a learning-rate sweep and bench_optim.py.

    python bench/optim_field_table.py SWEEP_DIR [SWEEP_DIR ...] --bench=docs/bench_optim.json \\
        [--out=docs/optim_field]

For every optimizer_variant in the sweep(s): its best run (lowest best val loss), the learning
rates tried and whether the best sits at an edge of them, the difference to AdamW's best, the
optimizer-state bytes that run measured after its first step (ratio to AdamW's run), and the ms per
optimizer step on the seed model from bench_optim.py's JSON. Writes OUT.md (the table), OUT.json
and OUT.png (best val loss against state bytes, log axis, the Pareto front marked).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leangpt.plotting import place_labels  # noqa: E402
from leangpt.report import collect  # noqa: E402

from leangpt.variants import VARIANTS  # noqa: E402

LIBRARY = {name: v.source for name, v in VARIANTS.items()}
BENCH_KEY = {"adamw": "adamw (foreach)"}


def best_per_variant(rows: list[dict]) -> dict[str, dict]:
    by_variant: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("status") == "finished" and row.get("best_val_loss") is not None:
            by_variant.setdefault(row["config"]["optimizer_variant"], []).append(row)
    out = {}
    for variant, runs in by_variant.items():
        best = min(runs, key=lambda r: r["best_val_loss"])
        rates = sorted({r["config"]["learning_rate"] for r in runs})
        lr = best["config"]["learning_rate"]
        out[variant] = dict(best=best, rates=rates, lr=lr, at_edge=len(rates) > 1 and lr in (rates[0], rates[-1]))
    return out


def pareto(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The points no other point beats on both state bytes and val loss, by increasing bytes."""
    front, best_loss = [], float("inf")
    for point in sorted(points):
        if point[1] < best_loss:
            front.append(point)
            best_loss = point[1]
    return front


def main(argv):
    sweeps = [Path(a) for a in argv if not a.startswith("--")]
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--"))
    if not sweeps or "bench" not in opts:
        sys.exit(__doc__)
    out = Path(opts.get("out", "docs/optim_field"))
    bench = json.loads(Path(opts["bench"]).read_text())
    seed_bench = next(v for k, v in bench["models"].items() if k.startswith("seed"))
    results = best_per_variant([row for sweep in sweeps for row in collect(sweep)])
    if "adamw" not in results:
        sys.exit("the sweep has no finished adamw run to compare against")
    ref = results["adamw"]["best"]
    order = sorted(results, key=lambda v: results[v]["best"]["optimizer_state_bytes"])
    lines = ["| variant | best val loss | vs AdamW | lr (of those tried) | state bytes | vs AdamW | ms/opt step | "
             "vs AdamW | library |", "|---|---:|---:|---|---:|---:|---:|---:|---|"]
    table = {}
    base_ms = seed_bench["adamw (foreach)"]["ms"]
    for variant in order:
        r = results[variant]
        best = r["best"]
        timing = seed_bench.get(BENCH_KEY.get(variant, variant), {})
        state = best["optimizer_state_bytes"]
        ratio = state / ref["optimizer_state_bytes"]
        tried = ", ".join(f"{x:g}" for x in r["rates"])
        edge = " (edge)" if r["at_edge"] else ""
        row = dict(best_val_loss=best["best_val_loss"], vs_adamw=best["best_val_loss"] - ref["best_val_loss"],
                   learning_rate=r["lr"], rates=r["rates"], at_edge=r["at_edge"], state_bytes=state, state_ratio=ratio,
                   ms=timing.get("ms"), ms_ratio=timing.get("ms") / base_ms if timing else None,
                   first_step_ms=timing.get("first_ms"), library=LIBRARY.get(variant, "?"),
                   weight_decay=best["config"]["weight_decay"], run=best["name"])
        table[variant] = row
        ms = f"{row['ms']:.2f} | {row['ms_ratio']:.2f}x" if timing else "- | -"
        lines.append(f"| {variant} | {row['best_val_loss']:.4f} | {row['vs_adamw']:+.4f} | **{r['lr']:g}**{edge} of "
                     f"{tried} | {state:,} | {ratio:.3f}x | {ms} | {row['library']} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"threads": bench["threads"], "variants": table}, indent=1))
    print("\n".join(lines))
    plot(table, out.with_suffix(".png"))


def plot(table: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    points = [(row["state_bytes"], row["best_val_loss"], name) for name, row in table.items()]
    front = pareto(points)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    on_front = {name for _, _, name in front}
    for x, y, name in points:
        ax.scatter(x, y, s=45, color="C3" if name in on_front else "C0", zorder=3)
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="C3", lw=1.5,
            label="Pareto front (no variant has both less state and lower loss)")
    ax.set_xscale("log")
    ax.set_xlabel("optimizer state after the first step (bytes, measured; log scale)", fontsize=11)
    ax.set_ylabel("best val loss", fontsize=11)
    ax.set_title("Every optimizer at its best learning rate\nseed CPU config: 4x128, block 64, batch 12, "
                 "2000 iters, eval on 200 batches", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")
    ax.margins(x=0.14, y=0.08)
    fig.tight_layout()
    # each name where it overlaps no other name, point or the legend's corner
    place_labels(ax, [p[0] for p in points], [p[1] for p in points], [p[2] for p in points], fontsize=10,
                 avoid=[ax.get_legend()])
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    main(sys.argv[1:])
