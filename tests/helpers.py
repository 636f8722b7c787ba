"""What the tests share: the one tiny corpus and model shape, and the helpers that train it,
compare its losses and launch it in several processes."""

import json
import os
import re
import socket
import subprocess
import sys
import dataclasses

import torch

from leangpt import checkpoint
from leangpt.config import TrainConfig
from leangpt.model import GPT, GPTConfig
from leangpt.train import train

CORPUS = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "All:\nResolved. resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n\n"
)


# the model every test trains unless it needs another shape (the seed size of the memory tests)
TINY_MODEL = dict(n_layer=2, n_head=4, n_embd=32, block_size=16)
# how it trains: the same settings in TrainConfig and on a command line
TINY_TRAINING = dict(device="cpu", compile=False, **TINY_MODEL, max_iters=20, lr_decay_iters=20, warmup_iters=2,
                     learning_rate=3e-3, min_lr=3e-4, eval_interval=10, eval_iters=2, log_interval=1, dropout=0.0,
                     seed=7)


def tiny_gpt_config(vocab_size: int = 20, **overrides) -> GPTConfig:
    return GPTConfig(**{**TINY_MODEL, "vocab_size": vocab_size, **overrides})


def tiny_gpt(vocab_size: int = 40, seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(tiny_gpt_config(vocab_size, **overrides))


def tiny_config(data_dir, out_dir, **overrides) -> TrainConfig:
    config = TrainConfig(out_dir=str(out_dir), data_dir=str(data_dir), dataset="tiny",
                         **{**TINY_TRAINING, "batch_size": 4, "gradient_accumulation_steps": 1})
    config = dataclasses.replace(config, **overrides)
    config.validate()
    return config


def common_args(data_dir, out_dir, **kw):
    """The tiny run as command-line arguments (batch and accumulation left at the defaults unless given)."""
    args = dict(data_dir=data_dir, dataset="tiny", out_dir=out_dir, **TINY_TRAINING)
    args.update(kw)
    return [f"--{k}={v}" for k, v in args.items()]


LOSS_LINE = re.compile(r"^(iter \d+: loss [\d.]+|step \d+: train loss [\d.]+, val loss [\d.]+)")


def losses(lines):
    """The numbers a user copies: everything but the timing."""
    return [m.group(1) for line in lines if (m := LOSS_LINE.match(line))]


def run_train(config):
    lines = []
    result = train(config, log=lines.append)
    return result, lines


def assert_resume_is_exact(tiny_data, tmp_path, **settings):
    """20 iterations straight equal 10, then 10 more resumed: same printed losses, same weights.
    Returns the straight run's (result, log lines)."""
    base = dict(dropout=0.1, lr_decay_iters=20, eval_interval=5, always_save_checkpoint=False, **settings)
    result, straight = run_train(tiny_config(tiny_data, tmp_path / "a", max_iters=20, **base))
    run_train(tiny_config(tiny_data, tmp_path / "b", max_iters=10, **base))
    _, resumed = run_train(tiny_config(tiny_data, tmp_path / "b", max_iters=20, init_from="resume", **base))
    # the resumed run starts after the evaluation at iter 10, which the first half already ran
    straight_after = [line for line in losses(straight) if iter_of(line) >= 10 and not line.startswith("step 10:")]
    assert losses(resumed) == straight_after
    a = checkpoint.load(tmp_path / "a" / "ckpt.pt")["model"]
    b = checkpoint.load(tmp_path / "b" / "ckpt.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    return result, straight


def iter_of(line):
    return int(re.match(r"\w+ (\d+):", line).group(1))


TIMEOUT = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args, world_size=1, torchrun=False, extra_env=None, expect=0):
    """Run `leangpt train` in world_size processes; kill them all if they outlive TIMEOUT. Each
    must exit with status `expect`; returns rank 0's output."""
    base_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={world_size}",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}", "-m", "leangpt", "train", *args]
        procs = [subprocess.Popen(cmd, env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    elif world_size == 1:
        procs = [subprocess.Popen([sys.executable, "-m", "leangpt", "train", *args], env=base_env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    else:
        port = free_port()
        procs = []
        for rank in range(world_size):
            env = {**base_env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                   "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size)}
            procs.append(subprocess.Popen([sys.executable, "-m", "leangpt", "train", *args], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == expect, f"exit {p.returncode}\n{out[-2000:]}\n{err[-3000:]}"
    return outputs[0][0]


def metrics(out_dir):
    records = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]
    last = {}
    for r in records:
        if r["kind"] in ("train", "eval"):
            last[(r["kind"], r["iter"])] = r.get("loss", r.get("val_loss"))
    return last


def assert_same_losses(a, b, tol=1e-5):
    assert a.keys() == b.keys()
    for key in a:
        assert abs(a[key] - b[key]) < tol, (key, a[key], b[key])


_single_runs = {}


def single_process_run(tiny_data, tmp_path_factory, variant, n_headgroup):
    """1 process with the global batch (8 = 2 ranks x 4), run once per session: the reference the
    DDP and FSDP tests compare 2 ranks against."""
    key = (variant, n_headgroup)  # every test's tiny_data holds the same corpus
    if key not in _single_runs:
        out = str(tmp_path_factory.mktemp("single"))
        launch(common_args(tiny_data, out, optimizer_variant=variant, n_headgroup=n_headgroup, batch_size=8,
                           gradient_accumulation_steps=1))
        _single_runs[key] = metrics(out)
    return _single_runs[key]


def tiny_sweep_file(tiny_data, tmp_path, grid: str):
    """A sweep config file over the tiny corpus (a 1-layer model, 6 iterations) with `grid`."""
    path = tmp_path / "base.py"
    path.write_text(
        f"data_dir = {str(tiny_data)!r}\ndataset = 'tiny'\ndevice = 'cpu'\ncompile = False\n"
        "n_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 16\nbatch_size = 4\n"
        "gradient_accumulation_steps = 1\nmax_iters = 6\nlr_decay_iters = 6\nwarmup_iters = 1\n"
        "eval_interval = 3\neval_iters = 2\nlog_interval = 1\nlearning_rate = 3e-3\nmin_lr = 3e-4\n"
        f"grid = {grid}\n")
    return path
