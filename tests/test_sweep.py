import csv
import json
import re

import pytest

from leangpt.cli import run
from leangpt.errors import ConfigError, LeanGPTError
from leangpt.report import collect
from leangpt.sweep import sweep
from tests.helpers import tiny_sweep_file

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def base_file(tiny_data, tmp_path):
    return tiny_sweep_file(tiny_data, tmp_path, "{'n_headgroup': [1, 2]}")


@pytest.mark.slow
def test_grid_sweep_writes_every_file(base_file, tmp_path, capsys):
    out = sweep([str(base_file), "--grid=optimizer_variant=adamw,adamsn", f"--sweep_dir={tmp_path / 'sw'}"])
    # off a terminal, the plain lines carry each run's elapsed time and the sweep's ETA
    printed_lines = capsys.readouterr().out.splitlines()
    evals = [line for line in printed_lines if line.strip().startswith("step 6:")]
    assert len(evals) == 4 and all(re.search(r"\[run \d+m\d\ds, sweep ETA (\d+m\d\ds|\?)\]$", e) for e in evals)
    assert sum(bool(re.search(r": finished in \d+m\d\ds$", line)) for line in printed_lines) == 4
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["name"] for r in rows] == ["n_headgroup=1,optimizer_variant=adamw", "n_headgroup=1,optimizer_variant=adamsn",
                                         "n_headgroup=2,optimizer_variant=adamw", "n_headgroup=2,optimizer_variant=adamsn"]
    for column in ("n_headgroup", "optimizer_variant", "train_loss", "val_loss", "best_val_loss", "params",
                   "optimizer_state_bytes", "kv_cache_bytes_per_token", "step_peak_bytes", "step_params_bytes",
                   "step_optimizer_state_bytes", "activations_saved_bytes", "max_rss_bytes", "ms_per_iter",
                   "tokens_per_s", "wall_s"):
        assert all(r[column] != "" for r in rows), column
    assert all(r["status"] == "finished" and r["iter"] == "6" for r in rows)
    # GQA halves the KV cache; AdamSN holds less state than AdamW for the same model
    kv = {r["name"]: int(r["kv_cache_bytes_per_token"]) for r in rows}
    assert kv["n_headgroup=2,optimizer_variant=adamw"] * 2 == kv["n_headgroup=1,optimizer_variant=adamw"]
    state = {r["optimizer_variant"] + r["n_headgroup"]: int(r["optimizer_state_bytes"]) for r in rows}
    assert state["adamsn1"] < state["adamw1"] and state["adamsn2"] < state["adamw2"]
    # the reported losses are the ones the run printed at its last evaluation
    printed = open(out / "runs" / rows[0]["name"] / "stdout.log").read()
    assert f"step 6: train loss {float(rows[0]['train_loss']):.4f}, val loss {float(rows[0]['val_loss']):.4f}" in printed
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 4 and all(r["sample"].startswith("\n") and len(r["sample"]) == 301 for r in results)
    peak = {r["optimizer_variant"] + r["n_headgroup"]: int(r["step_peak_bytes"]) for r in rows}
    assert peak["adamsn1"] < peak["adamw1"]  # the smaller state lowers the step's peak too
    for png in ("val_loss.png", "val_loss_vs_optimizer_state.png", "val_loss_vs_kv_cache.png", "step_memory.png"):
        assert (out / png).read_bytes()[:8] == PNG
    report = (out / "report.md").read_text()
    assert report.count("- Final losses: `step 6: train loss") == 4 and "## Comparison" in report
    assert "![val_loss.png](val_loss.png)" in report

    # leangpt report rebuilds the same numbers from the metrics alone
    before = (out / "results.csv").read_text()
    for f in ("results.csv", "report.md", "val_loss.png"):
        (out / f).unlink()
    assert run("report", [str(out)]) == 0
    assert (out / "results.csv").read_text() == before and (out / "report.md").read_text() == report

    # re-running the command redoes nothing that finished
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.jsonl")}
    sweep([str(base_file), "--grid=optimizer_variant=adamw,adamsn", f"--sweep_dir={tmp_path / 'sw'}"])
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.jsonl")}


@pytest.mark.slow
def test_interrupted_run_resumes_and_failed_run_is_recorded(base_file, tmp_path):
    sw = tmp_path / "sw"
    args = [str(base_file), "--grid=block_size=16,4096", f"--sweep_dir={sw}", "--grid=n_headgroup=1"]
    sweep(args)
    rows = {r["name"]: r for r in collect(sw)}
    failed = rows["n_headgroup=1,block_size=4096"]
    assert failed["status"] == "failed" and "not more than block_size=4096" in failed["error"]
    assert rows["n_headgroup=1,block_size=16"]["status"] == "finished"
    assert "failed (" in (sw / "report.md").read_text()
    assert run("sweep", args) == 1  # the command says so by its exit status, after the report

    # a run stopped mid-way (Ctrl-C writes ckpt.pt and run.json says interrupted) resumes from its checkpoint
    done = sw / "runs" / "n_headgroup=1,block_size=16"
    status = json.loads((done / "run.json").read_text())
    (done / "run.json").write_text(json.dumps({**status, "status": "interrupted"}))
    sweep(args)
    assert "resuming with" not in (done / "stdout.log").read_text()  # same architecture: no note
    assert json.loads((done / "run.json").read_text())["status"] == "finished"
    records = [json.loads(l) for l in open(done / "metrics.jsonl")]
    assert sum(r["kind"] == "end" for r in records) == 2  # two attempts, one report row
    assert collect(sw)[0]["iter"] == 6


@pytest.mark.parametrize("argv,needle", [
    (["--grid=n_layr=1,2"], "did you mean 'n_layer'"),
    (["--grid=n_layer="], "none empty"),
    (["--grid=n_layer=1,,2"], "none empty"),
    (["--grid=n_layer=one"], "is not an integer"),
    (["--grid=optimizer_variant=adamw,sgd"], "choose one of"),
    (["--grid=n_headgroup=3"], "run n_headgroup=3: n_headgroup=3 must divide n_head=2"),
    (["--grid"], "must look like --grid=KEY=V1,V2"),
])
def test_bad_grid_is_an_error_before_any_run(base_file, tmp_path, argv, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        sweep([str(base_file), *argv, f"--sweep_dir={tmp_path / 'sw'}"])
    assert not (tmp_path / "sw").exists()


def test_report_of_a_non_sweep_dir(tmp_path, capsys):
    assert run("report", [str(tmp_path)]) == 2
    assert "is not a sweep directory" in capsys.readouterr().err


def test_progress_bar_on_a_terminal():
    import io

    from leangpt.sweep import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    progress = Progress(total_runs=3, stream=screen)
    progress.iters_left = 300
    progress.iters_done = 50
    progress.update(1, "n_headgroup=2", 50, 100)
    text = screen.getvalue()
    assert text.startswith("\r\033[K[1/3] n_headgroup=2 iter 50/100 | sweep ETA ") and "\n" not in text
    progress.line("done")
    assert screen.getvalue().endswith("\r\033[Kdone\n")


def test_plot_labels_name_the_swept_keys_and_titles_the_setup():
    from leangpt.report import _label, _setup
    row = {"name": "x", "overrides": {"n_headgroup": 1, "optimizer_variant": "adamw"},
           "config": {"n_layer": 4, "n_embd": 128, "block_size": 64, "batch_size": 12, "max_iters": 2000}}
    assert _label(row) == "n_headgroup=1, adamw"
    assert _setup([row]) == "4x128, block 64, batch 12, 2000 iters"


@pytest.mark.slow
def test_a_second_sweep_on_the_same_sweep_dir_is_refused(base_file, tmp_path):
    from leangpt.fileio import directory_lock
    sw = tmp_path / "sw"
    with directory_lock(sw, key="sweep_dir"):
        with pytest.raises(LeanGPTError, match="sweep_dir=.* is in use by process"):
            sweep([str(base_file), f"--sweep_dir={sw}"])


@pytest.mark.slow
def test_rerunning_with_other_base_settings_is_refused(base_file, tmp_path):
    sw = tmp_path / "sw"
    sweep([str(base_file), f"--sweep_dir={sw}"])
    with pytest.raises(ConfigError, match=r"finished with other settings \(max_iters 6 -> 8.*delete"):
        sweep([str(base_file), f"--sweep_dir={sw}", "--max_iters=8", "--lr_decay_iters=8"])


@pytest.mark.parametrize("argv,needle", [
    (["--grid=out_dir=a,b"], "out_dir is set by the sweep"),
    (["--grid=init_from=scratch,resume"], "init_from is set by the sweep"),
])
def test_keys_a_sweep_owns_cannot_be_swept(base_file, tmp_path, argv, needle):
    with pytest.raises(ConfigError, match=needle):
        sweep([str(base_file), f"--sweep_dir={tmp_path / 'sw'}", *argv])


@pytest.mark.parametrize("text,needle", [("grid = [1, 2]\n", "must be a dict"),
                                         ("variants = 'x'\n", "must be a list of dicts")])
def test_malformed_grid_or_variants_in_a_config_file(tmp_path, text, needle):
    path = tmp_path / "bad.py"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        sweep([str(path), f"--sweep_dir={tmp_path / 'sw'}"])


@pytest.mark.slow
def test_infinite_values_round_trip_and_long_values_give_short_names(base_file, tmp_path):
    from leangpt.config import TrainConfig, parse_config
    from leangpt.sweep import run_name, write_run_config
    config = TrainConfig(grad_clip=float("inf"))
    written = write_run_config(config, tmp_path)
    assert written == tmp_path / "run_config.json"
    for name in ("run_config.json", "run_config.py"):  # what the sweep reads, and what people read
        assert parse_config(TrainConfig, [str(tmp_path / name)]).grad_clip == float("inf")
    name = run_name({"wandb_run_name": "x" * 400})
    assert len(name) <= 100 and name != run_name({"wandb_run_name": "x" * 399})


def test_sweep_eta_ignores_start_up_and_waits_for_enough_iterations():
    import io
    from leangpt.sweep import Progress
    progress = Progress(total_runs=2, stream=io.StringIO())
    progress.iters_left = 2 * 1000
    progress.advance(1, now=100.0)  # the first iteration, seen 100 s after the sweep began (start-up, eval)
    assert progress.eta(1, now=100.0) == "?"
    for i in range(1, 20):
        progress.advance(1, now=100.0 + 0.5 * i)
    assert progress.eta(20, now=109.5) == "?"  # 19 timed iterations: not yet enough
    progress.advance(1, now=110.0)  # 20 timed iterations in 10 s: 0.5 s each
    # 2000 - 21 iterations left at 0.5 s: 989.5 s (the 100 s of start-up are not an iteration's cost)
    assert progress.eta(21, now=110.0) == "16m29s"


def test_fast_quality_means_over_seeds_against_the_first_mode():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "bench" / "fast_quality.py"
    spec = importlib.util.spec_from_file_location("fast_quality", path)
    fast_quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fast_quality)

    def row(dtype, seed, loss, status="finished"):
        return {"status": status, "overrides": {"dtype": dtype, "seed": seed}, "val_loss": loss}
    rows = [row("float32", 1, 1.70), row("float32", 2, 1.72), row("bfloat16", 1, 1.71), row("bfloat16", 2, 1.75),
            row("bfloat16", 3, 9.0, status="failed")]
    fp32, bf16 = fast_quality.summarize(rows, tolerance=0.01)
    assert fp32["mode"] == "dtype=float32" and fp32["seeds"] == 2 and abs(fp32["mean_val_loss"] - 1.71) < 1e-12
    assert abs(fp32["std_over_seeds"] - 0.02 / 2 ** 0.5) < 1e-12 and fp32["holds"]
    assert bf16["seeds"] == 2 and abs(bf16["delta_vs_reference"] - 0.02) < 1e-12 and not bf16["holds"]
    with pytest.raises(LeanGPTError, match="no finished run"):
        fast_quality.summarize([row("float32", 1, 1.7, status="failed")], 0.01)


def test_a_command_line_key_replaces_the_variants_and_may_not_also_be_swept(tmp_path):
    from leangpt.config import parse_grid_args
    config = tmp_path / "sizes.py"
    config.write_text("variants = [dict(n_layer=2, max_iters=100), dict(n_layer=3, max_iters=50), dict(max_iters=7)]\n"
                      "grid = {'seed': [1, 2]}\n")
    _, runs, _ = parse_grid_args([str(config), "--max_iters=3"])
    assert runs == [{"n_layer": 2, "seed": 1}, {"n_layer": 2, "seed": 2}, {"n_layer": 3, "seed": 1},
                    {"n_layer": 3, "seed": 2}, {"seed": 1}, {"seed": 2}]
    _, runs, _ = parse_grid_args([str(config), "--max_iters=3", "--n_layer=1"])
    assert runs == [{"seed": 1}, {"seed": 2}]  # the variants the command line made alike run once
    with pytest.raises(ConfigError, match="seed is both swept .grid. and set on the command line"):
        parse_grid_args([str(config), "--seed=5"])


def test_runs_of_different_tokenizers_compare_in_bits_per_character():
    from leangpt.report import _comparison
    base = dict(status="finished", overrides={}, config={}, best_val_loss=1.0, params=1)
    rows = [{**base, "name": "c", "val_loss": 1.9083, "tokenizer": "char", "val_chars_per_token": 1.0},
            {**base, "name": "b", "val_loss": 4.1459, "tokenizer": "bpe", "val_chars_per_token": 111540 / 43559}]
    table = _comparison(rows, [])
    char_row, bpe_row = [line for line in table.splitlines() if line.startswith("| 1.9083") or line.startswith("| 4.1459")]
    # 1.9083 / ln 2 = 2.7531 bits per character; 4.1459 / ln 2 * 43559 / 111540 = 2.3358
    assert "| char | 2.7531 |" in char_row and "| bpe | 2.3358 |" in bpe_row and "(other tokens)" in bpe_row
    assert "val bits/char" not in _comparison(rows[:1], [])
