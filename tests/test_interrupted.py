"""Work stopped part-way stays honest: a checkpoint of an unfinished run says so, an interrupted
quickstart still samples and prints the command that continues it, and an interrupted sweep's
report gives every run its true state and the command that finishes the sweep."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leangpt.config import SampleConfig
from leangpt.model import GPT
from leangpt.sample import sample, unfinished_run_note
from tests.helpers import run_train, tiny_config, tiny_sweep_file

ROOT = Path(__file__).resolve().parents[1]


def signal_in_training_forward(monkeypatch, sig, call: int):
    """Send `sig` to this process from inside the `call`-th training forward pass."""
    forward, calls = GPT.forward, {"n": 0}

    def counting(self, idx, targets=None, cache=None):
        if self.training:
            calls["n"] += 1
            if calls["n"] == call:
                os.kill(os.getpid(), sig)
        return forward(self, idx, targets, cache)

    monkeypatch.setattr(GPT, "forward", counting)


def test_sampling_an_unfinished_run_says_which_iteration_of_how_many_it_holds(tiny_data, tmp_path, monkeypatch):
    signal_in_training_forward(monkeypatch, signal.SIGINT, call=4)  # inside iter 3's step: it ends, then the stop
    result, _ = run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=10, lr_decay_iters=10))
    monkeypatch.undo()
    assert result["status"] == "interrupted"
    config = SampleConfig(out_dir=str(tmp_path / "o"), max_new_tokens=3, device="cpu")
    info = []
    sample(config, out=lambda _: None, info=info.append)
    assert info[0] == ("this checkpoint holds iteration 4 of 10 (an unfinished run; continue it with the command "
                       "that trained it plus --init_from=resume)")
    # a finished run's checkpoint, and nanoGPT's without a config, say nothing of the kind
    assert unfinished_run_note({"iter_num": 10, "config": {"max_iters": 10}}) == ""
    assert unfinished_run_note({"iter_num": 10}) == ""


def quickstart_clone(tmp_path) -> Path:
    """The files the quickstart reads, in a directory of their own (it writes its data and
    checkpoint beside them, not into this checkout)."""
    clone = tmp_path / "clone"
    for name in ("scripts/quickstart.sh", "data/shakespeare_char/prepare.py", "config/train_shakespeare_char.py",
                 "train.py", "sample.py"):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_bytes((ROOT / name).read_bytes())
    # the environment is the one running these tests, already set up (CI runs the real setup.sh):
    # a setup here would reinstall it from this temporary copy whenever its stamp is older than
    # pyproject.toml, and leave the developer's venv pointing at a deleted directory
    (clone / "scripts" / "setup.sh").write_text("exit 0\n")
    return clone


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c to the terminal's process group", "sigterm to the script"])
def test_an_interrupted_quickstart_samples_its_checkpoint_and_prints_the_command_that_continues_it(tmp_path, how, monkeypatch):
    from leangpt import checkpoint
    from leangpt.config import TrainConfig, parse_config
    from tests.helpers import CORPUS, TIMEOUT
    clone = quickstart_clone(tmp_path)
    (tmp_path / "input.txt").write_text(CORPUS * 100)
    env = {**os.environ, "LEANGPT_VENV": str(Path(sys.executable).parents[1]), "QUICK": "1", "OMP_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1"}
    script = subprocess.Popen(["bash", str(clone / "scripts/quickstart.sh"), str(tmp_path / "input.txt")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              start_new_session=True)  # its own group, as a terminal gives each command
    printed = []
    try:
        for line in script.stdout:
            printed.append(line.rstrip("\n"))
            if line.startswith("iter 0:"):  # trained one step: a stop now checkpoints
                time.sleep(0.5)
                if how.startswith("ctrl-c"):
                    os.killpg(script.pid, signal.SIGINT)
                else:
                    script.send_signal(signal.SIGTERM)
                break
        printed += script.communicate(timeout=TIMEOUT)[0].splitlines()
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
    assert script.returncode == 130, "\n".join(printed[-30:])
    saved = checkpoint.load(clone / "out-shakespeare-char-quick" / "ckpt.pt")
    n = saved["iter_num"]
    assert 1 <= n < 300 and saved["config"]["max_iters"] == 300
    assert f"interrupted at iter {n}: checkpoint written to out-shakespeare-char-quick/ckpt.pt; " \
           "continue with --init_from=resume" in printed
    # the sample is drawn from that checkpoint, and says which iteration it holds
    at = printed.index("training was interrupted; a sample from its checkpoint:")
    assert printed[at + 1].startswith(f"this checkpoint holds iteration {n} of 300 (an unfinished run")
    assert any(line.startswith("generated 500 tokens at") for line in printed[at:])
    resume = printed[printed.index(f"continue this run where it stopped (from {clone}, after source "
                                   f"{env['LEANGPT_VENV']}/bin/activate):") + 1]
    args = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
            "--log_interval=100", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
            "--max_iters=300", "--lr_decay_iters=300", "--dropout=0.0", f"--dtype={saved['config']['dtype']}",
            "--out_dir=out-shakespeare-char-quick", "--init_from=resume"]
    assert resume.split() == ["python", "train.py", *args]
    # it is the interrupted run's own command: its settings, resuming
    monkeypatch.chdir(clone)
    config = parse_config(TrainConfig, args)
    assert config.init_from == "resume"
    assert {k: v for k, v in vars(config).items() if k != "init_from"} == \
           {k: v for k, v in saved["config"].items() if k != "init_from"}


@pytest.fixture
def three_runs(tiny_data, tmp_path):
    return tiny_sweep_file(tiny_data, tmp_path, "{'seed': [1, 2, 3]}")


def _signal_self_when(predicate):
    """SIGTERM to this process (the sweep) from a thread, once `predicate()` holds."""
    import threading

    def watch():
        deadline = time.time() + 120
        while not predicate() and time.time() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=watch, daemon=True).start()


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["training", "sampling", "between runs"])
def test_a_sweep_stopped_in_any_phase_exits_130_and_its_report_gives_every_run_its_state(three_runs, tmp_path, phase,
                                                                                         monkeypatch, capsys):
    import leangpt.sweep
    from leangpt import checkpoint
    from leangpt.cli import run
    sw = tmp_path / "sw"
    args = [str(three_runs), f"--sweep_dir={sw}"]
    runs = {n: sw / "runs" / f"seed={n}" for n in (1, 2, 3)}
    if phase == "training":  # run 1 trains long; the stop reaches its trainer
        args += ["--max_iters=3000", "--lr_decay_iters=3000", "--eval_interval=3000"]
        metrics = runs[1] / "metrics.jsonl"
        _signal_self_when(lambda: metrics.is_file() and '"iter": 3,' in metrics.read_text())
    elif phase == "sampling":  # inside run 2's sample, drawn by the sweep itself after its training
        real, calls = leangpt.sweep.write_sample, []

        def sample_then_stop(r):
            calls.append(r.name)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return real(r)
        monkeypatch.setattr(leangpt.sweep, "write_sample", sample_then_stop)
    else:  # once run 2 is done, before run 3 starts
        real, calls = leangpt.sweep.execute, []

        def execute_then_stop(*a):
            status = real(*a)
            calls.append(status)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return status
        monkeypatch.setattr(leangpt.sweep, "execute", execute_then_stop)

    assert run("sweep", args) == 130
    where = {"training": "while run 1/3 (seed=1) trained", "sampling": "while run 2/3 (seed=2) drew its sample",
             "between runs": "between runs (2 of 3 behind it)"}[phase]
    finished = {"training": 0, "sampling": 1, "between runs": 2}[phase]
    command = f"leangpt sweep {three_runs} --sweep_dir={sw}" + (
        " --max_iters=3000 --lr_decay_iters=3000 --eval_interval=3000" if phase == "training" else "")
    assert f"sweep interrupted {where}; {finished} of 3 runs finished. Resume it with: {command}  (finished runs " \
           "are skipped" in capsys.readouterr().out
    monkeypatch.undo()

    assert run("report", [str(sw)]) == 0
    report = (sw / "report.md").read_text()
    states = {n: report[report.index(f"## seed={n}\n"):].split("\n")[2] for n in (1, 2, 3)}
    if phase == "training":
        stopped_at = checkpoint.load(runs[1] / "ckpt.pt")["iter_num"]
        assert 4 <= stopped_at < 3000
        assert states[1] == f"Status: interrupted at iteration {stopped_at} of 3000 (resumes from its checkpoint)"
        left = "0 of 3 runs finished (1 interrupted, 2 not started)"
    elif phase == "sampling":
        assert states[1] == "Status: finished"
        assert states[2] == "Status: trained (6 of 6 iterations), but its sample was not drawn"
        left = "1 of 3 runs finished (1 trained, 1 not started)"
    else:
        assert states[1] == states[2] == "Status: finished"
        left = "2 of 3 runs finished (1 not started)"
    assert states[3] == "Status: not started"
    assert f"**This sweep is not finished**: {left}; finish it with `{command}` (the command that started it" in report
    table = report[report.index("## Comparison"):]
    assert "| 3 | not started |" in table

    if phase == "sampling":  # the rerun draws run 2's sample without training it again, then trains run 3
        trained_before = (runs[2] / "metrics.jsonl").read_text()
        assert run("sweep", args) == 0
        assert (runs[2] / "metrics.jsonl").read_text() == trained_before
        assert (runs[2] / "sample.txt").read_text().startswith("\n")
        report = (sw / "report.md").read_text()
        assert report.count("Status: finished") == 3 and "not finished" not in report


def test_a_report_lists_every_planned_run_with_its_true_state(tmp_path):
    from leangpt.report import _markdown, collect
    sw = tmp_path / "sw"
    names = ["a", "b", "c", "d", "e", "f"]
    (sw / "runs").mkdir(parents=True)
    (sw / "sweep.json").write_text(json.dumps({"argv": ["config/sweep_handout.py", "--max_iters=2000"],
                                               "runs": [{"name": n, "overrides": {"seed": i}} for i, n in enumerate(names)]}))

    def run_dir(name, status, records=(), sample=None, **extra):
        d = sw / "runs" / name
        d.mkdir()
        (d / "run.json").write_text(json.dumps({"status": status, "overrides": {"seed": names.index(name)}, **extra}))
        (d / "config.json").write_text(json.dumps({"max_iters": 2000}))
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        if sample is not None:
            (d / "sample.txt").write_text(sample)
    done = [{"kind": "eval", "iter": 2000, "train_loss": 1.5, "val_loss": 1.7}, {"kind": "end", "iter": 2000,
                                                                                   "status": "finished"}]
    run_dir("a", "finished", done, sample="\nKING:")
    run_dir("b", "finished", done)  # an older leangpt marked it finished before its sample was drawn
    run_dir("c", "interrupted", [{"kind": "eval", "iter": 250, "train_loss": 2.0, "val_loss": 2.1},
                                 {"kind": "train", "iter": 324, "loss": 2.0, "ms": 50.0},
                                 {"kind": "end", "iter": 325, "status": "interrupted"}])
    run_dir("d", "failed", error="error: the model does not fit in memory")
    run_dir("e", "running", [{"kind": "train", "iter": 99, "loss": 2.5, "ms": 50.0}])
    rows = collect(sw)
    assert [(r["name"], r["status"]) for r in rows] == [("a", "finished"), ("b", "trained"), ("c", "interrupted"),
                                                        ("d", "failed"), ("e", "running"), ("f", "not started")]
    report = _markdown(sw, rows, ["seed"], plots=[])  # write_report's text, without drawing its plots
    assert [line for line in report.splitlines() if line.startswith("Status: ")] == [
        "Status: finished",
        "Status: trained (2000 of 2000 iterations), but its sample was not drawn",
        "Status: interrupted at iteration 325 of 2000 (resumes from its checkpoint)",
        "Status: failed (error: the model does not fit in memory)",
        "Status: running, or stopped with no record of how (its sweep was killed); last logged iteration 100 of 2000",
        "Status: not started"]
    assert ("**This sweep is not finished**: 1 of 6 runs finished (1 trained, 1 interrupted, 1 failed, 1 running, "
            "1 not started); finish it with `leangpt sweep config/sweep_handout.py --max_iters=2000` (the command that "
            "started it") in report
    # only the runs that trained to their end have numbers in the comparison; the others their state
    table = report[report.index("## Comparison"):].splitlines()
    assert [line.split(" | ")[1] for line in table[4:10]] == ["1.7000", "1.7000", "interrupted at iteration 325 of 2000",
                                                             "failed", "running, or stopped with no record of how",
                                                             "not started"]
    # stopped in its final evaluation: trained to the end, its last losses not measured
    from leangpt.report import run_state
    assert run_state("interrupted", "", [{"kind": "end", "iter": 2000, "status": "interrupted"}], 2000) == \
        "interrupted at iteration 2000 of 2000, before its final evaluation (resumes from its checkpoint)"
