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
