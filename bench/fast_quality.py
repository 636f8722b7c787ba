"""Does a fast mode keep fp32's quality? Mean final val loss over seeds, per mode, from a sweep
such as config/sweep_fast_modes.py.

    python bench/fast_quality.py SWEEP_DIR [--tolerance=0.01] [--json=PATH]

Runs are grouped by every override except `seed`; the first group (fp32 eager in the preset) is
the reference. A mode holds quality when its mean final val loss is within `tolerance` of the
reference's. Prints one table row per mode: seeds, mean, standard deviation over seeds, the
difference to the reference and the verdict.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leangpt.errors import LeanGPTError  # noqa: E402
from leangpt.report import collect  # noqa: E402


def summarize(rows: list[dict], tolerance: float) -> list[dict]:
    """One entry per mode (the overrides other than seed), in the sweep's order."""
    modes: dict[str, list[float]] = {}
    for row in rows:
        if row["status"] != "finished" or "val_loss" not in row:
            continue
        label = ", ".join(f"{k}={v}" for k, v in row["overrides"].items() if k != "seed") or "base"
        modes.setdefault(label, []).append(row["val_loss"])
    if not modes:
        raise LeanGPTError("no finished run with a final val loss in this sweep")
    reference = statistics.mean(next(iter(modes.values())))
    out = []
    for label, losses in modes.items():
        mean = statistics.mean(losses)
        out.append({"mode": label, "seeds": len(losses), "mean_val_loss": mean,
                    "std_over_seeds": statistics.stdev(losses) if len(losses) > 1 else None,
                    "delta_vs_reference": mean - reference, "holds": abs(mean - reference) <= tolerance})
    return out


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("--"):
        sys.exit(__doc__)
    opts = dict(a[2:].split("=", 1) for a in argv[1:] if a.startswith("--") and "=" in a)
    tolerance = float(opts.get("tolerance", 0.01))
    try:
        table = summarize(collect(Path(argv[0])), tolerance)
    except LeanGPTError as exc:
        sys.exit(f"error: {exc}")
    print(f"| mode | seeds | mean val loss | std over seeds | vs {table[0]['mode']} | within {tolerance} |")
    print("|---|---:|---:|---:|---:|---|")
    for m in table:
        std = f"{m['std_over_seeds']:.4f}" if m["std_over_seeds"] is not None else "–"
        print(f"| {m['mode']} | {m['seeds']} | {m['mean_val_loss']:.4f} | {std} | {m['delta_vs_reference']:+.4f} | "
              f"{'yes' if m['holds'] else 'no'} |")
    if "json" in opts:
        Path(opts["json"]).write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    main(sys.argv[1:])
