"""The second adversarial pass: each test reproduces one way a user (hostile or unlucky) broke a
promise, and checks it holds now. Signals under torchrun and in sweeps, real write failures,
symlinks, damaged files and values that used to pass validation and fail deep inside."""

import dataclasses
import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from leangpt import checkpoint
from leangpt.cli import run
from leangpt.config import TrainConfig, parse_config, parse_grid_args
from leangpt.data import DataError, prepare_dataset
from leangpt.errors import ConfigError, LeanGPTError
from leangpt.model import GPT
from leangpt.report import collect, write_report
from leangpt.sweep import sweep
from leangpt.train import train
from tests.helpers import (CORPUS, TIMEOUT, common_args, iter_of, launch, losses, run_train, tiny_config,
                           tiny_sweep_file)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def signal_at_forward(monkeypatch, sig, training: bool, call: int):
    """Send `sig` to this process from inside the `call`-th forward pass in train (or eval) mode."""
    forward, calls = GPT.forward, {"n": 0}

    def counting(self, idx, targets=None, cache=None):
        if self.training == training:
            calls["n"] += 1
            if calls["n"] == call:
                os.kill(os.getpid(), sig)
        return forward(self, idx, targets, cache)

    monkeypatch.setattr(GPT, "forward", counting)


# ------------------------------------------------------------------ signals and stopping

SIGNAL_IN_STEP = """
import os, signal
if os.environ.get("RANK") == "1":  # rank 1 alone gets SIGTERM, inside its 4th optimizer step
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    calls = [0]
    def hook(optimizer, args, kwargs):
        calls[0] += 1
        if calls[0] == 4:
            os.kill(os.getpid(), signal.SIGTERM)
    register_optimizer_step_pre_hook(hook)
"""


@pytest.mark.slow
def test_sigterm_to_one_rank_during_its_step_stops_every_rank_with_a_checkpoint(tiny_data, tmp_path):
    # the signal lands after the ranks agreed on this iteration's stop flag: before, that rank
    # alone went on to save (a collective) while the other went into the next all-reduce
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SIGNAL_IN_STEP)
    out = tmp_path / "o"
    args = common_args(tiny_data, str(out), max_iters=50, lr_decay_iters=50, eval_interval=1000, batch_size=4,
                       dist_timeout=20)
    pythonpath = os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])
    printed = launch(args, world_size=2, extra_env={"PYTHONPATH": pythonpath}, expect=130)  # both ranks
    saved = checkpoint.load(out / "ckpt.pt")
    assert f"interrupted at iter {saved['iter_num']}:" in printed
    assert 3 <= saved["iter_num"] < 50 and len(saved["rng_per_rank"]) == 2


def test_sigterm_during_a_long_evaluation_stops_within_a_batch_and_resumes_exactly(tiny_data, tmp_path, monkeypatch):
    settings = dict(max_iters=8, lr_decay_iters=8, eval_interval=4, eval_iters=50, dropout=0.1)
    _, straight = run_train(tiny_config(tiny_data, tmp_path / "a", **settings))
    # the evaluation at iter 0 takes 100 forward passes; the signal lands in the 10th of iter 4's
    signal_at_forward(monkeypatch, signal.SIGTERM, training=False, call=110)
    result, lines = run_train(tiny_config(tiny_data, tmp_path / "b", **settings))
    monkeypatch.undo()
    assert result["status"] == "interrupted" and result["iter"] == 4
    assert not [line for line in lines if line.startswith("step 4:")]  # the evaluation was dropped, not finished
    saved = checkpoint.load(tmp_path / "b" / "ckpt.pt")
    assert saved["iter_num"] == 4 and saved["eval_done"] is False
    _, resumed = run_train(tiny_config(tiny_data, tmp_path / "b", init_from="resume", **settings))
    assert losses(resumed) == [line for line in losses(straight) if iter_of(line) >= 4]


def test_sigterm_between_micro_batches_undoes_the_step_and_resumes_exactly(tiny_data, tmp_path, monkeypatch):
    settings = dict(max_iters=10, lr_decay_iters=10, eval_interval=5, gradient_accumulation_steps=3, dropout=0.1)
    _, straight = run_train(tiny_config(tiny_data, tmp_path / "a", **settings))
    signal_at_forward(monkeypatch, signal.SIGTERM, training=True, call=3 * 6 + 2)  # iter 6, micro-batch 2 of 3
    result, _ = run_train(tiny_config(tiny_data, tmp_path / "b", **settings))
    monkeypatch.undo()
    assert result["status"] == "interrupted" and result["iter"] == 6
    assert checkpoint.load(tmp_path / "b" / "ckpt.pt")["iter_num"] == 6
    _, resumed = run_train(tiny_config(tiny_data, tmp_path / "b", init_from="resume", **settings))
    assert losses(resumed) == [line for line in losses(straight) if iter_of(line) >= 6 and not line.startswith("step 5")]


@pytest.fixture
def sweep_file(tiny_data, tmp_path):
    return tiny_sweep_file(tiny_data, tmp_path, "{'n_headgroup': [1]}")


def _sweep_process(sweep_file, sw, *extra):
    return subprocess.Popen([sys.executable, "-m", "leangpt", "sweep", str(sweep_file), f"--sweep_dir={sw}", *extra],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, process, what):
    deadline = time.time() + TIMEOUT
    while not predicate():
        assert process.poll() is None, f"the sweep ended before {what}: {process.communicate()}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _train_records(run_dir):
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


@pytest.mark.slow
def test_sigterm_to_a_sweep_reaches_its_trainer_and_a_rerun_resumes(sweep_file, tmp_path):
    sw, long_run = tmp_path / "sw", ["--max_iters=3000", "--lr_decay_iters=3000", "--eval_interval=3000"]
    run_dir = sw / "runs" / "n_headgroup=1"
    sweep = _sweep_process(sweep_file, sw, *long_run)
    try:
        _wait_for(lambda: any(r["kind"] == "train" and r["iter"] >= 3 for r in _train_records(run_dir)), sweep,
                  "training")
        sweep.send_signal(signal.SIGTERM)
        out, err = sweep.communicate(timeout=TIMEOUT)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 130, err[-2000:]
    assert "sweep interrupted" in out
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert "interrupted at iter" in (run_dir / "stdout.log").read_text()
    stopped_at = checkpoint.load(run_dir / "ckpt.pt")["iter_num"]
    assert stopped_at >= 4
    rerun = subprocess.run([sys.executable, "-m", "leangpt", "sweep", str(sweep_file), f"--sweep_dir={sw}",
                            "--max_iters=3000", "--lr_decay_iters=3000", "--eval_interval=3000"],
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming" in rerun.stdout
    trained = [r["iter"] for r in _train_records(run_dir) if r["kind"] == "train"]
    assert trained[0] == 0 and trained[-1] == 2999 and stopped_at in trained


@pytest.mark.slow
def test_a_run_whose_trainer_was_killed_resumes_from_its_checkpoint(sweep_file, tmp_path):
    sw = tmp_path / "sw"
    settings = ["--max_iters=3000", "--lr_decay_iters=3000", "--eval_interval=20", "--always_save_checkpoint=True"]
    run_dir = sw / "runs" / "n_headgroup=1"
    sweep = _sweep_process(sweep_file, sw, *settings)
    try:
        _wait_for(lambda: (run_dir / "ckpt.pt").is_file() and (run_dir / ".lock").is_file(), sweep, "a checkpoint")
        os.kill(int((run_dir / ".lock").read_text()), signal.SIGKILL)  # the trainer, as the OOM killer would
        sweep.communicate(timeout=TIMEOUT)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 1 and json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    saved_at = checkpoint.load(run_dir / "ckpt.pt")["iter_num"]
    rerun = subprocess.run([sys.executable, "-m", "leangpt", "sweep", str(sweep_file), f"--sweep_dir={sw}", *settings],
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming" in rerun.stdout
    trained = [r["iter"] for r in _train_records(run_dir) if r["kind"] == "train"]
    assert trained[0] == 0 and saved_at in trained and trained[-1] == 2999  # the first attempt's records kept


def _finished_sweep(sweep_file, sw):
    sweep([str(sweep_file), f"--sweep_dir={sw}"])
    return sw / "runs" / "n_headgroup=1"


def _mark(run_dir, status):
    record = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**record, "status": status}))


@pytest.mark.slow  # spawns processes or runs a sweep
def test_an_interrupted_run_rerun_with_other_settings_is_refused(sweep_file, tmp_path):
    run_dir = _finished_sweep(sweep_file, tmp_path / "sw")
    _mark(run_dir, "interrupted")
    with pytest.raises(ConfigError, match=r"interrupted with other settings \(learning_rate 0.003 -> 0.01"):
        sweep([str(sweep_file), f"--sweep_dir={tmp_path / 'sw'}", "--learning_rate=1e-2"])


@pytest.mark.slow  # spawns processes or runs a sweep
def test_a_copied_sweep_directory_can_be_rerun(sweep_file, tmp_path, capsys):
    _finished_sweep(sweep_file, tmp_path / "sw")
    shutil.copytree(tmp_path / "sw", tmp_path / "copy")
    (tmp_path / "copy" / ".lock").unlink()
    capsys.readouterr()
    sweep([str(sweep_file), f"--sweep_dir={tmp_path / 'copy'}"])
    assert "1 runs, 1 already finished" in capsys.readouterr().out


@pytest.mark.slow  # spawns processes or runs a sweep
def test_rerunning_a_sweep_executes_nothing_from_its_directory(sweep_file, tmp_path):
    run_dir = _finished_sweep(sweep_file, tmp_path / "sw")
    marker = tmp_path / "ran"
    (run_dir / "run_config.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    sweep([str(sweep_file), f"--sweep_dir={tmp_path / 'sw'}"])  # a finished run: compared, not run
    _mark(run_dir, "interrupted")
    sweep([str(sweep_file), f"--sweep_dir={tmp_path / 'sw'}"])  # an interrupted run: resumed
    assert not marker.exists()
    assert json.loads((run_dir / "run_config.json").read_text())["n_headgroup"] == 1


# ------------------------------------------------------------------ files and filesystems

def _limited_write(limit_bytes):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return limit


def _tmpfs(path, size):
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root here")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("how", ["file size limit", "full tmpfs"])
def test_a_failed_checkpoint_write_is_one_line_and_keeps_the_previous(tiny_data, tmp_path, how):
    out = tmp_path / "o"
    if how == "full tmpfs":
        out = _tmpfs(tmp_path / "fs", "8m") / "o"
    try:
        args = common_args(tiny_data, str(out), n_embd=64, max_iters=2, eval_interval=2)
        first = subprocess.run([sys.executable, "-m", "leangpt", "train", *args], capture_output=True, text=True,
                               timeout=TIMEOUT)
        assert first.returncode == 0, first.stderr
        size = (out / "ckpt.pt").stat().st_size
        if how == "full tmpfs":  # fill the filesystem up to half a checkpoint
            free = shutil.disk_usage(out).free
            (out.parent / "filler").write_bytes(b"\0" * max(0, free - size // 2))
        more = common_args(tiny_data, str(out), n_embd=64, max_iters=4, eval_interval=2, init_from="resume",
                           always_save_checkpoint=True)
        limit = _limited_write(size // 2) if how == "file size limit" else None
        second = subprocess.run([sys.executable, "-m", "leangpt", "train", *more], capture_output=True, text=True,
                                timeout=TIMEOUT, preexec_fn=limit)
        err = second.stderr.strip().splitlines()
        assert second.returncode == 2 and len(err) == 1, second.stderr[-2000:]
        assert err[0].startswith(f"error: could not write {out / 'ckpt.pt'}") and "intact" in err[0]
        assert checkpoint.load(out / "ckpt.pt")["iter_num"] == 2
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
        # convert writes the same way (its checkpoint holds weights only: a quarter of the trainer's)
        target = out.parent / "gqa"
        if how == "full tmpfs":
            (out.parent / "filler2").write_bytes(b"\0" * max(0, shutil.disk_usage(out).free - size // 16))
        converted = subprocess.run([sys.executable, "-m", "leangpt", "convert", f"--in_dir={out}",
                                    f"--out_dir={target}", "--n_headgroup=2"], capture_output=True, text=True,
                                   timeout=TIMEOUT, preexec_fn=_limited_write(size // 16) if limit else None)
        err = converted.stderr.strip().splitlines()
        assert converted.returncode == 2 and len(err) == 1 and "could not write" in err[0], converted.stderr[-2000:]
    finally:
        if how == "full tmpfs":
            subprocess.run(["umount", str(tmp_path / "fs")])


def test_writes_replace_symlinks_instead_of_following_them(tiny_data, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    victims = {name: tmp_path / f"victim-{name}" for name in (".lock", "metrics.jsonl")}
    for name, victim in victims.items():
        victim.write_text("precious\n")
        (out / name).symlink_to(victim)
    run_train(tiny_config(tiny_data, out, max_iters=2, eval_interval=2))
    for name, victim in victims.items():
        assert victim.read_text() == "precious\n", name
        assert not (out / name).is_symlink()
    assert '"kind": "train"' in (out / "metrics.jsonl").read_text()


@pytest.mark.slow  # spawns processes or runs a sweep
def test_a_sweep_does_not_write_through_symlinks_in_a_run_directory(sweep_file, tmp_path):
    run_dir = tmp_path / "sw" / "runs" / "n_headgroup=1"
    run_dir.mkdir(parents=True)
    victims = {name: tmp_path / f"victim-{name}" for name in ("stdout.log", "stderr.log", "sample.txt")}
    for name, victim in victims.items():
        victim.write_text("precious\n")
        (run_dir / name).symlink_to(victim)
    sweep([str(sweep_file), f"--sweep_dir={tmp_path / 'sw'}"])
    for name, victim in victims.items():
        assert victim.read_text() == "precious\n", name
    assert (run_dir / "sample.txt").read_text().startswith("\n")


def test_only_leangpts_own_temporaries_are_removed(tiny_data, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / ".notes.tmp").write_text("the user's")
    (out / ".leangpt-ckpt.pt.abc123.tmp").write_text("left by a killed write")
    run_train(tiny_config(tiny_data, out, max_iters=1, eval_interval=1))
    assert (out / ".notes.tmp").read_text() == "the user's"
    assert not (out / ".leangpt-ckpt.pt.abc123.tmp").exists()


def test_a_dataset_left_mixed_by_a_killed_prepare_is_refused(tmp_path):
    data = tmp_path / "data"
    prepare_dataset(CORPUS * 40, data / "tiny")
    prepare_dataset(CORPUS[::-1] * 41, tmp_path / "other")
    # kill -9 between the renames: the new train.bin beside the old val.bin and meta.pkl, and a temporary
    shutil.copy(tmp_path / "other" / "train.bin", data / "tiny" / "train.bin")
    (data / "tiny" / ".leangpt-val.bin.x1.tmp").write_bytes(b"half")
    with pytest.raises(DataError, match=r"train.bin is not the file meta.pkl was written with"):
        train(tiny_config(data, tmp_path / "o", max_iters=1), log=lambda _: None)
    prepare_dataset(CORPUS * 40, data / "tiny")  # preparing again mends it, and removes the temporary
    assert not (data / "tiny" / ".leangpt-val.bin.x1.tmp").exists()
    train(tiny_config(data, tmp_path / "o", max_iters=1), log=lambda _: None)


def test_a_resume_after_a_half_written_metrics_line_keeps_every_new_record(tiny_data, tmp_path):
    out = tmp_path / "o"
    run_train(tiny_config(tiny_data, out, max_iters=4, eval_interval=2))
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "iter": 4, "lo')  # a kill mid-write
    before = len((out / "metrics.jsonl").read_text().splitlines())
    run_train(tiny_config(tiny_data, out, max_iters=8, eval_interval=2, init_from="resume"))
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert lines[before - 1] == '{"kind": "train", "iter": 4, "lo'
    new = [json.loads(line) for line in lines[before:]]
    assert [r["iter"] for r in new if r["kind"] == "train"] == [4, 5, 6, 7]


def test_convert_takes_the_out_dir_lock_and_never_replaces_another_run(tiny_data, tmp_path, capsys):
    from leangpt.fileio import directory_lock
    run_train(tiny_config(tiny_data, tmp_path / "mha", max_iters=2, eval_interval=2))
    run_train(tiny_config(tiny_data, tmp_path / "other", max_iters=2, eval_interval=2))
    args = [f"--in_dir={tmp_path / 'mha'}", "--n_headgroup=2"]
    with directory_lock(tmp_path / "busy"):
        assert run("convert", [*args, f"--out_dir={tmp_path / 'busy'}"]) == 2
    assert "is in use by process" in one_error_line(capsys)
    assert not (tmp_path / "busy" / "ckpt.pt").exists()
    before = (tmp_path / "other" / "ckpt.pt").read_bytes()
    assert run("convert", [*args, f"--out_dir={tmp_path / 'other'}"]) == 2
    assert "another run's checkpoint" in one_error_line(capsys)
    assert (tmp_path / "other" / "ckpt.pt").read_bytes() == before


# ------------------------------------------------------------------ damaged or odd input

@pytest.fixture
def trained(tiny_data, tmp_path):
    out = tmp_path / "o"
    run_train(tiny_config(tiny_data, out, max_iters=2, eval_interval=2))
    return out


DAMAGE = {
    "meta is a string": lambda c: c.update(meta="x"),
    "model is a list": lambda c: c.update(model=[1, 2]),
    "leangpt_model_args is a string": lambda c: c.update(leangpt_model_args="x"),
    "model_args is None": lambda c: c.update(model_args=None),
    "config is a list": lambda c: c.update(config=[1]),
    "optimizer is a list": lambda c: c.update(optimizer=[1]),
    "a short itos": lambda c: c["meta"].update(itos={i: c["meta"]["itos"][i] for i in range(3)}),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_checkpoint_with_a_valid_digest_but_odd_parts_is_one_line(tiny_data, trained, capsys, damage):
    ckpt = torch.load(trained / "ckpt.pt", weights_only=True)
    ckpt.pop("digest")
    DAMAGE[damage](ckpt)
    checkpoint.save_atomic(ckpt, trained / "ckpt.pt")  # a fresh, valid digest over the odd contents
    assert run("sample", [f"--out_dir={trained}", "--device=cpu", "--max_new_tokens=3", "--num_samples=1"]) == 2
    one_error_line(capsys)
    args = common_args(tiny_data, str(trained), max_iters=4, init_from="resume")
    assert run("train", args) == 2
    one_error_line(capsys)


@pytest.mark.parametrize("vocab_size,stoi,needle", [
    ("65", None, "vocab_size '65' is not an integer"),
    (65.0, None, "vocab_size 65.0 is not an integer"),
    (10**12, None, "is not an integer from 1 to 4294967296"),
    (None, "list", "stoi and itos must be dicts"),
])
def test_an_odd_meta_pkl_is_one_line(tiny_data, tmp_path, capsys, vocab_size, stoi, needle):
    meta_path = tiny_data / "tiny" / "meta.pkl"
    meta = pickle.loads(meta_path.read_bytes())
    if vocab_size is not None:
        meta["vocab_size"] = vocab_size
    if stoi == "list":
        meta["stoi"] = list(meta["stoi"])
    meta_path.write_bytes(pickle.dumps(meta))
    assert run("train", common_args(tiny_data, str(tmp_path / "o"), max_iters=1)) == 2
    assert needle in one_error_line(capsys)
    assert not (tmp_path / "o" / "ckpt.pt").exists()


def test_a_token_file_cut_to_an_odd_size_is_one_line(tiny_data, tmp_path, capsys):
    path = tiny_data / "tiny" / "train.bin"
    path.write_bytes(path.read_bytes()[:-1])
    assert run("train", common_args(tiny_data, str(tmp_path / "o"), max_iters=1)) == 2
    assert "not a whole number of uint16 ids" in one_error_line(capsys)


def test_an_upstream_checkpoint_with_a_smaller_vocabulary_is_one_line(trained, tmp_path, capsys):
    ckpt = torch.load(trained / "ckpt.pt", weights_only=True)
    upstream = {k: ckpt[k] for k in ("model", "model_args", "iter_num", "best_val_loss")}
    upstream["config"] = {"dataset": "small"}
    torch.save(upstream, trained / "ckpt.pt")  # nanoGPT's layout: no digest, no meta
    prepare_dataset("abcdefgh" * 100, tmp_path / "data2" / "small")
    assert run("sample", [f"--out_dir={trained}", f"--data_dir={tmp_path / 'data2'}", "--device=cpu",
                          "--start=a", "--max_new_tokens=3"]) == 2
    assert "its vocabulary (meta.pkl) only 8" in one_error_line(capsys)


def test_a_report_over_damaged_run_files_skips_and_names_them(tmp_path):
    sw = tmp_path / "sw"
    good = sw / "runs" / "r1"
    good.mkdir(parents=True)
    (good / "run.json").write_text("[]")
    lines = [json.dumps({"kind": "eval", "iter": 0, "train_loss": 4.0, "val_loss": 4.1}), "42",
             json.dumps({"kind": "eval", "iter": 5}), "\xff\xfe", json.dumps({"kind": "train", "iter": 0, "loss": 4.0,
                                                                              "ms": 3.0}),
             json.dumps({"kind": "eval", "iter": 10, "train_loss": 3.0, "val_loss": 3.2})]
    (good / "metrics.jsonl").write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    outside = tmp_path / "x"
    outside.mkdir()
    (outside / "metrics.jsonl").write_text(json.dumps({"kind": "eval", "iter": 0, "train_loss": 1, "val_loss": 1}))
    (sw / "sweep.json").write_text(json.dumps({"runs": [{}, {"name": "../../x"}, {"name": "r1"}]}))
    report = write_report(sw).read_text()
    rows = collect(sw)
    assert [r["name"] for r in rows] == ["r1"] and rows[0]["val_loss"] == 3.2
    assert "Skipped 3 damaged line(s) of metrics.jsonl: 2, 3, 4" in report


@pytest.mark.parametrize("text,needle", [
    ("max_iters = None\n", "max_iters=None is not an integer"),
    ("n_layer = [2]\n", "n_layer=[2] is not an integer"),
    ("import sys\nsys.exit(0)\n", "called sys.exit(0)"),
])
def test_odd_config_files_are_one_line(tmp_path, capsys, text, needle):
    path = tmp_path / "c.py"
    path.write_text(text)
    assert run("train", [str(path), f"--out_dir={tmp_path / 'o'}"]) == 2
    assert needle in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv,needle", [
    (["--muon_ns_steps=100"], "muon_ns_steps=100 must be from 1 to 99"),
    (["--dist_timeout=1e10"], "dist_timeout=10000000000.0 must be from 1 to 604800"),
    (["--dist_timeout=0.001"], "dist_timeout=0.001 must be from 1"),
    (["--dist_timeout=1e300"], "must be from 1 to 604800"),
    (["--eps=inf"], "eps=inf must be a finite number"),
    (["--adafactor_eps2=inf"], "adafactor_eps2=inf must be a finite number"),
])
def test_values_that_failed_deep_inside_are_refused_by_validation(argv, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        parse_config(TrainConfig, argv).validate()


def test_a_model_too_large_for_memory_is_one_line_before_allocating(tiny_data, tmp_path, capsys):
    assert run("train", common_args(tiny_data, str(tmp_path / "o"), n_embd=1000000, max_iters=1)) == 2
    assert "does not fit in memory" in one_error_line(capsys)


def test_a_block_size_the_data_cannot_fill_is_refused_before_building_the_model(tiny_data, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the model was built before the data was checked")
    monkeypatch.setattr(GPT, "__init__", never)
    with pytest.raises(DataError, match="not more than block_size=100000000"):
        train(dataclasses.replace(tiny_config(tiny_data, tmp_path / "o"), block_size=10**8), log=lambda _: None)


def test_a_grid_key_given_twice_is_refused():
    with pytest.raises(ConfigError, match=r"--grid=n_layer is given twice; give all its values in one: "
                                          r"--grid=n_layer=1,2,3"):
        parse_grid_args(["--grid=n_layer=1,2", "--grid=n_layer=3"])


def test_json_config_files_are_data(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"n_layer": 3, "learning_rate": 1e-2}))
    config = parse_config(TrainConfig, [str(path)])
    assert config.n_layer == 3 and config.learning_rate == 1e-2
    path.write_text("[1]")
    with pytest.raises(LeanGPTError, match="must hold a JSON object"):
        parse_config(TrainConfig, [str(path)])
