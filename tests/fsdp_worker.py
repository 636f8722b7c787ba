"""What tests/test_fsdp.py runs on every rank under torchrun (each mode prints one JSON line on rank 0).

    grad     the gradient FSDP leaves on each shard, for a loss whose averaged gradient is known by hand
    kill     train, and die by SIGKILL on rank 0 in the middle of the second checkpoint save
    memory   the measured step memory of `leangpt memory --measure=True` on this rank
"""

import json
import os
import signal
import sys

import torch
import torch.distributed as dist


def gradient_by_hand():
    """Rank r's loss is (r + 1) * sum(W x) with x all ones, so every entry of W's gradient is r + 1
    on rank r, and their average over 2 ranks is 1.5 (a sum, gloo's silent bug, would give 3)."""
    from leangpt.device import Runtime
    from leangpt.fsdp import shard_model
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model = torch.nn.Linear(3, 5, bias=False)  # 5 rows: uneven shards (3 and 2) on 2 ranks
    shard_model(model, Runtime("cpu", "float32"))
    loss = (rank + 1) * model(torch.ones(1, 3)).sum()
    loss.backward()
    grads = sorted({round(v, 6) for v in model.weight.grad.full_tensor().flatten().tolist()})
    if rank == 0:
        print(json.dumps({"distinct_gradient_values": grads}))
    dist.destroy_process_group()


def killed_during_save(argv):
    """`leangpt train` whose rank 0 is killed (SIGKILL) after its second save of ckpt has written its
    shards but before the save is published (only rank 0 publishes)."""
    from leangpt import sharded_checkpoint
    from leangpt.cli import run
    saves = {"n": 0}
    publish = sharded_checkpoint._publish

    def publish_or_die(partial, final, link):
        saves["n"] += link.name == "ckpt.dcp"
        if saves["n"] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        publish(partial, final, link)

    sharded_checkpoint._publish = publish_or_die
    sys.exit(run("train", argv))


def measured_memory(argv):
    from leangpt.config import parse_config
    from leangpt.memory import MemoryConfig, step_memory
    breakdown = step_memory(parse_config(MemoryConfig, argv))
    if int(os.environ["RANK"]) == 0:
        print(json.dumps(breakdown.as_dict()))


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    {"grad": lambda: gradient_by_hand(), "kill": lambda: killed_during_save(rest),
     "memory": lambda: measured_memory(rest)}[mode]()
