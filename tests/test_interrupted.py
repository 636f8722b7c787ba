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
from tests.helpers import run_train, tiny_config

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
    for name in ("scripts/quickstart.sh", "scripts/setup.sh", "data/shakespeare_char/prepare.py",
                 "config/train_shakespeare_char.py", "train.py", "sample.py", "pyproject.toml"):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_bytes((ROOT / name).read_bytes())
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
