"""DDP and ZeRO on CPU over gloo: 2 processes on 127.0.0.1, launched from the test with a timeout."""

import json
import os
import subprocess
import sys

import pytest

from leangpt import checkpoint
from tests.helpers import TIMEOUT, assert_same_losses, common_args, free_port, launch, metrics, single_process_run

pytestmark = pytest.mark.slow  # every test here launches processes

CASES = [(v, s) for v in ("adamw", "adamsn", "adafactor") for s in (1, 2)]
single_run = single_process_run


@pytest.mark.parametrize("zero", [False, True])
@pytest.mark.parametrize("variant,n_headgroup", CASES)
def test_two_ranks_equal_one_process(tiny_data, tmp_path, tmp_path_factory, variant, n_headgroup, zero):
    reference = single_run(tiny_data, tmp_path_factory, variant, n_headgroup)
    out = str(tmp_path / "ddp")
    # per rank: batch 4; gradient_accumulation_steps counts micro-batches of all ranks together
    printed = launch(common_args(tiny_data, out, optimizer_variant=variant, n_headgroup=n_headgroup, batch_size=4,
                                 gradient_accumulation_steps=2, zero=zero), world_size=2)
    assert_same_losses(metrics(out), reference)
    if zero:  # each rank keeps roughly half of the state
        per_rank = [r for r in map(json.loads, open(os.path.join(out, "metrics.jsonl"))) if r["kind"] == "memory"][0]
        shares = per_rank["optimizer_state_bytes_per_rank"]
        assert len(shares) == 2 and all(0 < b < 0.8 * sum(shares) for b in shares)
        assert "per rank:" in printed
        # leangpt memory's ZeRO partition gives the larger rank's state exactly
        from leangpt.memory import MemoryConfig, step_memory
        estimate = step_memory(MemoryConfig(data_dir=str(tiny_data), dataset="tiny", n_layer=2, n_head=4, n_embd=32,
                                            block_size=16, batch_size=4, optimizer_variant=variant,
                                            n_headgroup=n_headgroup, world_size=2, gradient_accumulation_steps=2,
                                            zero=True))
        assert estimate.optimizer_state == max(shares)


def test_activation_checkpointing_under_ddp_equals_one_process(tiny_data, tmp_path, tmp_path_factory):
    reference = single_run(tiny_data, tmp_path_factory, "adamw", 2)
    out = str(tmp_path / "ddp")
    launch(common_args(tiny_data, out, optimizer_variant="adamw", n_headgroup=2, batch_size=4,
                       gradient_accumulation_steps=2, activation_checkpointing=True), world_size=2)
    assert_same_losses(metrics(out), reference)


def test_resume_under_ddp_and_on_one_process(tiny_data, tmp_path, tmp_path_factory):
    reference = single_run(tiny_data, tmp_path_factory, "adamsn", 2)
    ddp = dict(optimizer_variant="adamsn", n_headgroup=2, batch_size=4, gradient_accumulation_steps=2, zero=True)
    out = str(tmp_path / "a")
    launch(common_args(tiny_data, out, max_iters=10, **ddp), world_size=2)
    assert checkpoint.load(os.path.join(out, "ckpt.pt"))["optimizer"]["state"]  # gathered from both ranks
    launch(common_args(tiny_data, out, init_from="resume", **ddp), world_size=2)
    assert_same_losses(metrics(out), reference)

    # a checkpoint written by 2 ranks (ZeRO) continues in 1 process with the same global batch
    out = str(tmp_path / "b")
    launch(common_args(tiny_data, out, max_iters=10, **ddp), world_size=2)
    launch(common_args(tiny_data, out, init_from="resume", optimizer_variant="adamsn", n_headgroup=2,
                       batch_size=8, gradient_accumulation_steps=1))
    assert_same_losses(metrics(out), reference)


def test_torchrun_launch_and_accumulation_check(tiny_data, tmp_path):
    out = str(tmp_path / "t")
    printed = launch(common_args(tiny_data, out, batch_size=4, gradient_accumulation_steps=2, max_iters=4,
                                 lr_decay_iters=4, eval_interval=2), world_size=2, torchrun=True)
    assert "step 4: train loss" in printed
    bad = subprocess.run([sys.executable, "-m", "leangpt", "train",
                          *common_args(tiny_data, out, gradient_accumulation_steps=3, max_iters=2)],
                         env={**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
                              "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}, capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert bad.returncode == 0  # world size 1: any accumulation works
    with pytest.raises(AssertionError, match="must be divisible by the world size 2.*pass --gradient_accumulation_steps=4"):
        launch(common_args(tiny_data, out, gradient_accumulation_steps=3, max_iters=2), world_size=2)


def test_bfloat16_on_cpu_is_close_to_float32(tiny_data, tmp_path):
    fp32, bf16 = str(tmp_path / "f"), str(tmp_path / "b")
    launch(common_args(tiny_data, fp32, batch_size=8))
    launch(common_args(tiny_data, bf16, batch_size=8, dtype="bfloat16"))
    a, b = metrics(fp32), metrics(bf16)
    assert abs(a[("eval", 20)] - b[("eval", 20)]) < 0.05
    assert b[("eval", 20)] < b[("eval", 0)] - 0.3


def test_a_killed_rank_stops_the_others_with_one_line(tiny_data, tmp_path):
    import signal
    port = free_port()
    args = common_args(tiny_data, str(tmp_path / "o"), max_iters=100000, lr_decay_iters=100000, batch_size=4,
                       gradient_accumulation_steps=2, eval_interval=1000, dist_timeout=20)
    procs = []
    for rank in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}
        procs.append(subprocess.Popen([sys.executable, "-m", "leangpt", "train", *args], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        for line in procs[0].stdout:  # rank 0 prints; wait until both are training
            if line.startswith("iter 3:"):
                break
        procs[1].send_signal(signal.SIGKILL)
        _, err = procs[0].communicate(timeout=120)  # far below torch's own 1800 s: dist_timeout ended it
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    lines = err.strip().splitlines()
    assert procs[0].returncode == 2, err[-2000:]
    assert lines[-1].startswith("error: rank 0 lost contact with the other ranks"), err[-2000:]
    assert len(lines) == 1, err[-2000:]


def test_chunked_loss_under_ddp_equals_the_plain_loss_in_one_process(tiny_data, tmp_path, tmp_path_factory):
    reference = single_run(tiny_data, tmp_path_factory, "adamw", 2)
    out = str(tmp_path / "ddp")
    launch(common_args(tiny_data, out, optimizer_variant="adamw", n_headgroup=2, batch_size=4,
                       gradient_accumulation_steps=2, chunked_loss=True, loss_chunk_size=24), world_size=2)
    assert_same_losses(metrics(out), reference)


def test_the_step_in_backward_under_torchrun_is_one_line(tiny_data, tmp_path):
    args = common_args(tiny_data, str(tmp_path / "o"), optimizer_in_backward=True, gradient_accumulation_steps=1,
                       batch_size=4)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                          "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}", "-m", "leangpt", "train",
                          *args], capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode != 0
    assert "error: optimizer_in_backward=True would step each weight before DDP averages" in out.stderr
