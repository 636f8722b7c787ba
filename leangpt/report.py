"""A sweep's results, rebuilt from its runs' files: results.csv/json, report.md and PNG plots.

Everything comes from what the runs wrote (config.json, metrics.jsonl, run.json, sample.txt),
so `leangpt report SWEEP_DIR` gives the same report as the sweep itself, without training.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

from .errors import LeanGPTError
from .fileio import atomic_write_bytes, atomic_write_json
from .formatting import format_bytes
from .checks import setting_notes_of
from .metrics import read_metrics
from .plotting import place_labels
from .variants import VARIANTS

# what a report shows of each run's training settings: these, then the ones its optimizer variant
# reads (its registry entry's), so that a run never lists a setting its optimizer ignores
RUN_KEYS = ("optimizer_variant", "learning_rate", "min_lr", "max_iters", "lr_decay_iters", "warmup_iters",
            "batch_size", "gradient_accumulation_steps", "grad_clip", "eval_iters", "seed", "device", "dtype")
# the tensor-level breakdown of one training step's peak (training logs it as "step_memory")
STEP_MEMORY = (("params", "weights"), ("grads", "grads"), ("optimizer_state", "opt. state"),
               ("activations", "activations"), ("temporaries", "temporaries"), ("peak", "step peak"))
COLUMNS = ("name", "status", "iter", "train_loss", "val_loss", "best_val_loss", "best_iter", "params",
           "optimizer_state_bytes", "optimizer_state_vs_adamw", "kv_cache_bytes_per_token",
           *(f"step_{key}_bytes" for key, _ in STEP_MEMORY), "step_peak_phase", "activations_saved_bytes",
           "max_rss_bytes", "ms_per_iter", "tokens_per_s", "wall_s", "error")


def collect_run(run_dir: Path, planned: dict | None = None) -> dict:
    """One run's numbers and its true state. A resumed run's metrics hold repeated iterations:
    the last record wins. `planned` is the sweep's plan of it (its overrides), for a run not started."""
    status = _read_json(run_dir / "run.json")
    if not (run_dir / "run.json").is_file() and not (run_dir / "metrics.jsonl").is_file():
        return {"name": run_dir.name, "status": "not started", "state": "not started",
                "overrides": dict((planned or {}).get("overrides") or {}), "error": "", "config": {}, "curve": [],
                "damaged_lines": [], "sample": ""}
    config = _read_json(run_dir / "config.json")
    damaged: list[int] = []
    records = read_metrics(run_dir / "metrics.jsonl", damaged) if (run_dir / "metrics.jsonl").is_file() else []
    latest = {}
    for r in records:
        latest[(r.get("kind"), r.get("iter"))] = r
    evals = sorted((r for (k, _), r in latest.items() if k == "eval"), key=lambda r: r["iter"])
    trains = [r for (k, _), r in latest.items() if k == "train"]
    memory = next((r for (k, _), r in latest.items() if k == "memory"), {})
    step_memory = next((r for (k, _), r in latest.items() if k == "step_memory"), {})
    ends = [r for r in records if r.get("kind") == "end"]
    row = {"name": run_dir.name, "status": str(status.get("status", "unknown")), "overrides": status.get("overrides", {}),
           "error": str(status.get("error", "")), "config": config,
           "curve": [(r["iter"], r["val_loss"]) for r in evals], "damaged_lines": damaged}
    if not isinstance(row["overrides"], dict):
        row["overrides"] = {}
    if evals:
        best = min(evals, key=lambda r: r["val_loss"])
        row.update(iter=evals[-1]["iter"], train_loss=evals[-1]["train_loss"], val_loss=evals[-1]["val_loss"],
                   best_val_loss=best["val_loss"], best_iter=best["iter"])
    if memory:
        row.update(tokenizer=memory.get("tokenizer", "char"), val_chars_per_token=memory.get("val_chars_per_token"))
        row.update(params=memory["params"], optimizer_state_bytes=memory["optimizer_state_bytes"],
                   optimizer_state_vs_adamw=memory["optimizer_state_ratio"],
                   kv_cache_bytes_per_token=memory["kv_cache_bytes_per_token"])
    if step_memory:
        row.update({f"step_{key}_bytes": step_memory[key] for key, _ in STEP_MEMORY})
        row.update(step_peak_phase=step_memory["peak_phase"], activations_saved_bytes=step_memory["activations_saved"])
    if trains:
        row["ms_per_iter"] = statistics.median(r["ms"] for r in trains)
        tokens = config.get("batch_size", 0) * config.get("block_size", 0) * config.get("gradient_accumulation_steps", 1)
        row["tokens_per_s"] = tokens / row["ms_per_iter"] * 1000
    if ends:
        row["wall_s"] = sum(r.get("wall_s") or 0 for r in ends)
        # the whole process's resident memory (torch itself included), not the step's tensors
        rss = [r.get("max_rss_bytes") or r.get("peak_memory_bytes") for r in ends]
        row["max_rss_bytes"] = max((v for v in rss if v), default=None)
    sample = run_dir / "sample.txt"
    row["sample"] = sample.read_text() if sample.is_file() else ""
    if row["status"] == "finished" and not row["sample"]:  # an older leangpt wrote this before the sample
        row["status"] = "trained"
    row["state"] = run_state(row["status"], row["error"], records, config.get("max_iters"))
    return row


def run_state(status: str, error: str, records: list[dict], max_iters) -> str:
    """A run's state in words: finished, interrupted at iteration N of M, trained but without
    its sample, failed (why), or still running (or stopped with no record of how)."""
    of = f" of {max_iters}" if isinstance(max_iters, int) else ""
    ends = [r for r in records if r.get("kind") == "end" and isinstance(r.get("iter"), int)]
    if status == "finished":
        return "finished"
    if status == "interrupted":
        at = ""
        if ends and ends[-1].get("status") == "interrupted":
            at = f" at iteration {ends[-1]['iter']}{of}" + (", before its final evaluation"
                                                            if ends[-1]["iter"] == max_iters else "")
        return f"interrupted{at} (resumes from its checkpoint)"
    if status == "trained":
        return f"trained ({max_iters}{of} iterations), but its sample was not drawn" + (f" ({error})" if error else "")
    if status == "failed":
        return f"failed ({error})" if error else "failed"
    if status == "running":
        trained = [r["iter"] + 1 for r in records if r.get("kind") == "train" and isinstance(r.get("iter"), int)]
        return ("running, or stopped with no record of how (its sweep was killed)"
                + (f"; last logged iteration {trained[-1]}{of}" if trained else ""))
    return status


def collect(sweep_dir: Path) -> list[dict]:
    runs_dir = sweep_dir / "runs"
    if not runs_dir.is_dir():
        raise LeanGPTError(f"{sweep_dir} is not a sweep directory (no runs/ in it)")
    plan = _read_json(sweep_dir / "sweep.json").get("runs")
    planned = {r.get("name"): r for r in plan if isinstance(r, dict)} if isinstance(plan, list) else {}
    # only plain names of directories inside runs/: a damaged sweep.json cannot send the report elsewhere
    names = [n for n in planned if isinstance(n, str) and n and n not in (".", "..") and "/" not in n and "\\" not in n]
    if not names:
        names = sorted(p.name for p in runs_dir.iterdir() if p.is_dir())
    # every run of the plan, started or not
    return [collect_run(runs_dir / name, planned.get(name)) for name in names]


def unfinished_note(sweep_dir: Path, rows: list[dict]) -> list[str]:
    """What is left of the sweep, by state, and the command that finishes it."""
    left = [r for r in rows if r["status"] != "finished"]
    if not left:
        return []
    counts: dict[str, int] = {}
    for r in left:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    argv = _read_json(sweep_dir / "sweep.json").get("argv")
    if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
        import shlex
        how = (f"finish it with `leangpt sweep {shlex.join(argv)}` (the command that started it: finished runs "
               "are skipped, the others resume from their checkpoints or start)")
    else:
        how = "finish it by running the command that started it again (finished runs are skipped)"
    states = ", ".join(f"{n} {status}" for status, n in counts.items())
    return [f"**This sweep is not finished**: {len(rows) - len(left)} of {len(rows)} runs finished ({states}); "
            f"{how}.", ""]


def write_report(sweep_dir: Path) -> Path:
    rows = collect(sweep_dir)
    grid_keys = list(dict.fromkeys(k for r in rows for k in r["overrides"]))
    table = [{**{k: r.get(k) for k in COLUMNS}, **{k: _setting(r, k) for k in grid_keys}} for r in rows]
    _write_csv(sweep_dir / "results.csv", table, ["name", *grid_keys, *COLUMNS[1:]])
    atomic_write_json(sweep_dir / "results.json", [{k: v for k, v in r.items()} for r in rows])
    plots = _plots(sweep_dir, rows)
    path = sweep_dir / "report.md"
    atomic_write_bytes(path, _markdown(sweep_dir, rows, grid_keys, plots).encode("utf-8"))
    return path


def _markdown(sweep_dir: Path, rows: list[dict], grid_keys: list[str], plots: list[str] | str) -> str:
    out = [f"# Sweep report: {sweep_dir}", ""]
    out += ["Every number below was read from the runs' metrics.jsonl; rebuild with "
            f"`leangpt report {sweep_dir}`.", ""]
    out += unfinished_note(sweep_dir, rows)
    for r in rows:
        c = r["config"]
        out += [f"## {r['name']}", "", f"Status: {r['state']}", ""]
        for note in setting_notes_of(c) if c else []:
            out += [f"- {note[0].upper()}{note[1:]}", ""]
        if r["damaged_lines"]:
            lines = ", ".join(str(n) for n in r["damaged_lines"][:10]) + (", ..." if len(r["damaged_lines"]) > 10 else "")
            out += [f"- Skipped {len(r['damaged_lines'])} damaged line(s) of metrics.jsonl: {lines}", ""]
        if c:
            out += [f"- Model: {_model_settings(c)}, params={_num(r.get('params'))}",
                    f"- Training: {', '.join(f'{k}={c.get(k)}' for k in training_keys(c))}"]
        if r.get("val_loss") is not None:
            out += [f"- Final losses: `step {r['iter']}: train loss {r['train_loss']:.4f}, val loss {r['val_loss']:.4f}`"
                    f" (best val {r['best_val_loss']:.4f} at step {r['best_iter']})"]
        if r["sample"]:
            out += ["- Sample (seed 1337, prompt newline, 300 tokens):", "", "```", r["sample"].strip("\n"), "```"]
        out.append("")
    out += ["## Comparison", "", _comparison(rows, grid_keys), "",
            "Memory columns: the tensors alive at the peak of one training step (the second, when the "
            "optimizer state exists throughout), by what they are; they add up to the step peak. "
            "`leangpt memory` estimates the same breakdown without training.", ""]
    if isinstance(plots, str):
        out += [plots, ""]
    else:
        out += [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(out)


def training_keys(config: dict) -> tuple[str, ...]:
    """The settings of a run's config that decide its training: RUN_KEYS and its variant's own."""
    variant = VARIANTS.get(config.get("optimizer_variant"))
    own = variant.settings if variant else ()
    return RUN_KEYS + tuple(k for k in own if k not in RUN_KEYS)


def _model_settings(config: dict) -> str:
    """The model's fields as the run resolved them (config.json's model_args; vocab size aside)."""
    model = {k: v for k, v in (config.get("model_args") or {}).items() if k != "vocab_size"}
    text = ", ".join(f"{k}={v}" for k, v in model.items())
    if "n_head" in model and "n_headgroup" in model:
        text += f", n_kv_head={model['n_head'] // model['n_headgroup']}"
    return text


def _trained(row: dict) -> bool:
    """Whether a run trained to its end: its final losses compare with the other runs'."""
    return row["status"] in ("finished", "trained") and row.get("val_loss") is not None


def _comparison(rows: list[dict], grid_keys: list[str]) -> str:
    reference = next((r for r in rows if _trained(r)), None)
    # losses per token of different tokenizers are not comparable: per character they are
    mixed = len({r.get("tokenizer", "char") for r in rows if _trained(r)}) > 1
    head = [*grid_keys, "val loss", "Δ val vs first", "best val", *(["tokenizer", "val bits/char"] if mixed else []),
            "params", "state vs AdamW", "KV cache B/token",
            *(label for _, label in STEP_MEMORY), "peak in", "ms/iter", "tokens/s", "wall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if not _trained(r):
            cells = [str(_setting(r, k)) for k in grid_keys] + [r.get("state", r["status"]).split(" (")[0]] + \
                [""] * (len(head) - len(grid_keys) - 1)
        else:
            comparable = r.get("tokenizer", "char") == reference.get("tokenizer", "char")
            per_char = r.get("val_chars_per_token")
            cells = [str(_setting(r, k)) for k in grid_keys] + [
                f"{r['val_loss']:.4f}", f"{r['val_loss'] - reference['val_loss']:+.4f}" if comparable else "(other tokens)",
                f"{r['best_val_loss']:.4f}",
                *([r.get("tokenizer", "char"), f"{r['val_loss'] / math.log(2) / per_char:.4f}" if per_char else ""]
                  if mixed else []),
                _num(r.get("params")),
                f"{r['optimizer_state_vs_adamw']:.3f}x" if r.get("optimizer_state_vs_adamw") else "",
                _num(r.get("kv_cache_bytes_per_token")),
                *(_bytes(r.get(f"step_{key}_bytes")) for key, _ in STEP_MEMORY), r.get("step_peak_phase", ""),
                f"{r['ms_per_iter']:.1f}" if r.get("ms_per_iter") else "",
                f"{r['tokens_per_s']:,.0f}" if r.get("tokens_per_s") else "",
                f"{r['wall_s']:.0f}s" if r.get("wall_s") else ""]
        lines.append("| " + " | ".join(cells) + " |")
    if mixed:
        lines += ["", "The runs read different tokenizers, so their losses per token do not compare; val bits/char "
                  "does: val loss / ln 2 x the val split's tokens per character (from its meta.pkl)."]
    return "\n".join(lines)


def _plots(sweep_dir: Path, rows: list[dict]) -> list[str] | str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "(plots skipped: matplotlib is not installed; pip install 'leangpt[plots]')"
    done = [r for r in rows if r.get("val_loss") is not None]
    written = [_loss_curves(sweep_dir, done, plt)]
    for key, label, name in (("optimizer_state_bytes", "optimizer state (MiB)", "val_loss_vs_optimizer_state.png"),
                             ("kv_cache_bytes_per_token", "KV cache (bytes/token)", "val_loss_vs_kv_cache.png")):
        final = [r for r in done if _trained(r) and r.get(key) is not None]  # final losses only
        if _scatter(sweep_dir / name, final, key, label, plt):
            written.append(name)
    memory_plot = _memory_plot(sweep_dir, rows, plt)
    if memory_plot:
        written.append(memory_plot)
    return written


# the last part of training, where the runs differ, gets a panel of its own
ZOOM_FROM = 0.6


def _loss_curves(sweep_dir: Path, done: list[dict], plt) -> str:
    """Every run's val-loss curve, whole on the left and each run's last 40% zoomed on the right
    (a run's own last 40%, so that a shorter run is not left out of the zoom)."""
    fig, (whole, zoom) = plt.subplots(1, 2, figsize=(10, 4.5))
    ends = {max((it for it, _ in r["curve"]), default=0) for r in done}
    # runs of different tokenizers are drawn per character, where they compare
    per_char = len({r.get("tokenizer", "char") for r in done}) > 1 and all(r.get("val_chars_per_token") for r in done)
    zoomed = []
    for i, r in enumerate(done):
        curve = [(it, loss / math.log(2) / r["val_chars_per_token"]) for it, loss in r["curve"]] if per_char \
            else r["curve"]
        its, losses = zip(*curve)
        style = dict(marker="o", markersize=3, color=f"C{i % 10}")
        whole.plot(its, losses, label=_label(r), **style)
        tail = [(it, loss) for it, loss in curve if it >= ZOOM_FROM * max(its)]
        if tail:
            zoom.plot(*zip(*tail), **style)
            zoomed += [loss for _, loss in tail]
    whole.set_title("whole run", fontsize=10)
    zoom.set_title(f"from iteration {ZOOM_FROM * max(ends):.0f} on (zoomed)" if len(ends) == 1
                   else f"each run's last {1 - ZOOM_FROM:.0%} (zoomed)", fontsize=10)
    if zoomed:
        spread = (max(zoomed) - min(zoomed)) or 0.01
        zoom.set_ylim(min(zoomed) - 0.1 * spread, max(zoomed) + 0.1 * spread)
    for ax in (whole, zoom):
        ax.set_xlabel("iteration")
        ax.set_ylabel("val bits per character" if per_char else "val loss")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Validation {'bits per character' if per_char else 'loss'}, {_setup(done)}", fontsize=11)
    fig.legend(*whole.get_legend_handles_labels(), loc="lower center", fontsize=9,
               ncol=min(2, max(1, len(done))), frameon=False)
    # room under the panels for the legend: one row per two runs
    fig.tight_layout(rect=(0, min(0.45, 0.07 * ((len(done) + 1) // 2)), 1, 1))
    _save(fig, sweep_dir / "val_loss.png", plt, layout=False)
    return "val_loss.png"


def _scatter(path: Path, runs: list[dict], key: str, label: str, plt) -> bool:
    """Final val loss against one measured quantity, each point labelled by its run. Not drawn (and
    an earlier drawing removed) when every run has the same value, where it would say nothing."""
    if len({r[key] for r in runs}) < 2:
        path.unlink(missing_ok=True)
        return False
    scale = 2**20 if key == "optimizer_state_bytes" else 1
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [r[key] / scale for r in runs]
    ys = [r["val_loss"] for r in runs]
    for i, (x, y) in enumerate(zip(xs, ys)):
        ax.scatter(x, y, color=f"C{i % 10}", zorder=3)
    # room around the points for their labels
    ax.margins(x=0.35, y=0.2)
    if min(xs) >= 0:  # bytes are never negative: the margin stops just left of zero
        ax.set_xlim(left=max(ax.get_xlim()[0], -0.03 * max(xs)))
    ax.set_xlabel(label)
    ax.set_ylabel("final val loss")
    ax.set_title(f"Final val loss against {label.split(' (')[0]}\n{_setup(runs)}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    place_labels(ax, xs, ys, [_label(r) for r in runs])
    _save(fig, path, plt, layout=False)
    return True


def _memory_plot(sweep_dir: Path, rows: list[dict], plt) -> str | None:
    """One stacked bar per run: the step's peak, split into what the bytes are."""
    runs = [r for r in rows if r.get("step_peak_bytes")]
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(runs) + 2) + 2.2, 4.5))
    bottoms = [0.0] * len(runs)
    for key, label in STEP_MEMORY[:-1]:
        heights = [r[f"step_{key}_bytes"] / 2**20 for r in runs]
        ax.bar(range(len(runs)), heights, bottom=bottoms, label=label)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_xticks(range(len(runs)), [_label(r) for r in runs], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("MiB alive at the step's peak")
    ax.set_title(f"Peak memory of one training step, by category\n{_setup(runs)}", fontsize=10)
    # beside the bars, never over one
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(alpha=0.3, axis="y")
    _save(fig, sweep_dir / "step_memory.png", plt)
    return "step_memory.png"


def _save(fig, path: Path, plt, layout: bool = True) -> None:
    import io
    buffer = io.BytesIO()
    if layout:
        fig.tight_layout()
    # "tight" keeps anything drawn past the figure's edge (a long tick label, a legend) in the image
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    import io
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


# spelled as a reader of a plot knows them, to keep legends and point labels short
SHORT_KEYS = {"learning_rate": "lr", "weight_decay": "wd", "block_size": "block", "batch_size": "batch"}


def _label(row: dict) -> str:
    """A legend label that names the swept keys (`n_headgroup=1, adamw, lr=0.005`): an optimizer's
    name needs no key before it, n_layer and n_embd read as `4x128`, and lr_decay_iters equal to
    max_iters is left out."""
    overrides = dict(row["overrides"])
    parts = []
    if "n_layer" in overrides and "n_embd" in overrides:
        parts.append(f"{overrides.pop('n_layer')}x{overrides.pop('n_embd')}")
    if overrides.get("lr_decay_iters") is not None and overrides.get("lr_decay_iters") == overrides.get("max_iters"):
        overrides.pop("lr_decay_iters")
    for key, value in overrides.items():
        parts.append(str(value) if key == "optimizer_variant" else f"{SHORT_KEYS.get(key, key)}={value}")
    return ", ".join(parts) or row["name"]


def _setup(rows: list[dict]) -> str:
    """What the runs share, for a title: model size and iterations (`4x128, block 64, 2000 iters`)."""
    configs = [r["config"] for r in rows if r.get("config")]
    if not configs:
        return ""
    c = configs[0]
    parts = []
    if all(x.get("n_layer") == c.get("n_layer") and x.get("n_embd") == c.get("n_embd") for x in configs):
        parts.append(f"{c.get('n_layer')}x{c.get('n_embd')}")
    if all(x.get("block_size") == c.get("block_size") for x in configs):
        parts.append(f"block {c.get('block_size')}")
    if all(x.get("batch_size") == c.get("batch_size") for x in configs):
        parts.append(f"batch {c.get('batch_size')}")
    if all(x.get("max_iters") == c.get("max_iters") for x in configs):
        parts.append(f"{c.get('max_iters')} iters")
    return ", ".join(parts)


def _setting(row: dict, key: str):
    """A run's value for a swept key: its override, else what its config resolved to."""
    return row["overrides"].get(key, row["config"].get(key))


def _read_json(path: Path) -> dict:
    """A JSON object from a file, or {} for a missing, unreadable or non-object one."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _num(n) -> str:
    return f"{n:,}" if isinstance(n, int) else ""


def _bytes(n) -> str:
    return "" if n is None else format_bytes(n)
