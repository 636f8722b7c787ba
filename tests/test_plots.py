"""The sweep's plots: readable at their default size (labels inside the axes and apart, legends
clear of the bars, a zoomed panel where runs differ) and skipped where they would say nothing."""

import math

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from leangpt import report  # noqa: E402
from leangpt.plotting import place_labels  # noqa: E402


def _rows(kv=(2048, 2048, 2048, 2048)):
    """Four runs like the course's optimizer sweep, with long labels and two points close together."""
    specs = [({"optimizer_variant": "adam", "learning_rate": 3e-3, "min_lr": 3e-4}, 6.13, 1.7733),
             ({"optimizer_variant": "adamw", "learning_rate": 5e-3, "min_lr": 5e-4}, 6.13, 1.7835),
             ({"optimizer_variant": "adamsn", "learning_rate": 5e-2, "min_lr": 5e-3, "weight_decay": 6e-3}, 3.16, 1.7909),
             ({"optimizer_variant": "adafactor", "learning_rate": 5e-2, "min_lr": 5e-3, "weight_decay": 0.0}, 0.037, 1.7456)]
    rows = []
    for i, (overrides, state_mib, val) in enumerate(specs):
        curve = [(it, val + 2.4 * math.exp(-it / 300)) for it in range(0, 2001, 250)]
        memory = {f"step_{key}_bytes": (i + 1) * 2**20 for key, _ in report.STEP_MEMORY}
        rows.append(dict(name=f"run{i}", status="finished", overrides=overrides, curve=curve, val_loss=val,
                         config=dict(n_layer=4, n_embd=128, block_size=64, batch_size=12, max_iters=2000),
                         optimizer_state_bytes=int(state_mib * 2**20), kv_cache_bytes_per_token=kv[i], **memory))
    return rows


def _box(artist):
    renderer = artist.figure.canvas.get_renderer()
    return artist.get_window_extent(renderer)


def _overlap(a, b):
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 0 and min(a.y1, b.y1) - max(a.y0, b.y0) > 0


def test_point_labels_stay_inside_the_axes_and_apart():
    fig, ax = plt.subplots(figsize=(6, 4))
    # five points, two of them almost on top of each other, with long labels
    xs, ys = [0.0, 6.1, 6.13, 3.1, 5.9], [1.74, 1.773, 1.783, 1.791, 1.79]
    labels = [f"variant {i}, learning_rate=0.005, min_lr=0.0005" for i in range(5)]
    ax.scatter(xs, ys)
    ax.margins(x=0.35, y=0.2)
    notes = place_labels(ax, xs, ys, labels)
    frame = ax.get_window_extent(fig.canvas.get_renderer())
    boxes = [_box(n) for n in notes]
    for box in boxes:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not _overlap(boxes[i], boxes[j]), (notes[i].get_text(), notes[j].get_text())
    plt.close(fig)


def test_place_labels_refuses_mismatched_lists():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="as many"):
        place_labels(ax, [1, 2], [1], ["a", "b"])
    plt.close(fig)


def test_the_sweep_writes_readable_plots_and_skips_the_one_that_says_nothing(tmp_path):
    stale = tmp_path / "val_loss_vs_kv_cache.png"
    stale.write_bytes(b"from an earlier report")
    written = report._plots(tmp_path, _rows())
    # every run has the same KV cache: that plot would put all points at one x
    assert written == ["val_loss.png", "val_loss_vs_optimizer_state.png", "step_memory.png"]
    assert not stale.exists()
    assert report._plots(tmp_path, _rows(kv=(4096, 2048, 2048, 1024)))[2] == "val_loss_vs_kv_cache.png"


def test_the_val_loss_plot_has_a_zoomed_panel_of_the_last_part(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path, plt, layout=True: figures.append(fig))
    report._loss_curves(tmp_path, _rows(), plt)
    whole, zoom = figures[0].axes
    low, high = zoom.get_ylim()
    # the zoom spans the last 40% of the runs, where they end 0.045 apart, not the first loss of 4
    assert zoom.get_xlim()[0] >= 1100 and high - low < 0.2
    assert whole.get_ylim()[1] > 4
    # the legend lies below both panels
    legend = figures[0].legends[0]
    assert _box(legend).y1 <= min(_box(whole).y0, _box(zoom).y0)


def test_a_shorter_run_keeps_its_tail_in_the_zoomed_panel(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path, plt, layout=True: figures.append(fig))
    rows = _rows()
    rows[1]["curve"] = [(it, loss) for it, loss in rows[1]["curve"] if it <= 1000]
    report._loss_curves(tmp_path, rows, plt)
    zoom = figures[0].axes[1]
    # the 1,000-iteration run shows its own last 40% (750 and 1000); the others from 1250 on
    drawn = [tuple(line.get_xdata()) for line in zoom.get_lines()]
    assert drawn[1] == (750, 1000) and drawn[0] == (1250, 1500, 1750, 2000)
    assert "last 40%" in zoom.get_title()


def test_the_step_memory_legend_covers_no_bar_and_the_title_fits(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path, plt, layout=True: (fig.tight_layout(), figures.append(fig)))
    report._memory_plot(tmp_path, [dict(r, step_peak_bytes=1) for r in _rows()], plt)
    fig = figures[0]
    ax = fig.axes[0]
    fig.canvas.draw()
    legend = _box(ax.get_legend())
    for bar in ax.patches:
        assert not _overlap(legend, _box(bar))
    title = _box(ax.title)
    assert title.x0 >= 0 and title.x1 <= fig.bbox.width and title.y1 <= fig.bbox.height


def test_labels_say_which_keys_in_short():
    row = {"name": "x", "overrides": {"optimizer_variant": "adamsn", "learning_rate": 0.05, "min_lr": 0.005,
                                      "weight_decay": 0.006}}
    assert report._label(row) == "adamsn, lr=0.05, min_lr=0.005, wd=0.006"
    row = {"name": "x", "overrides": {"n_layer": 6, "n_head": 4, "n_embd": 256, "block_size": 128,
                                      "max_iters": 1000, "lr_decay_iters": 1000}}
    assert report._label(row) == "6x256, n_head=4, block=128, max_iters=1000"
