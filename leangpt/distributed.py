"""torchrun's process group: which rank this is, how ranks agree, and how a lost peer reads."""

from __future__ import annotations

import dataclasses
import datetime
import os

import torch

from .device import auto_device


@dataclasses.dataclass
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    group: bool = False  # a process group was joined (fsdp=True joins one of a single rank too)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def master(self) -> bool:
        return self.rank == 0

    def mean(self, value: float, device: str) -> float:
        """The average of a scalar over ranks (the loss every rank would report together)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return t.item() / self.world_size

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order (a list of one without a process group)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out


def setup_distributed(config) -> tuple[Distributed, str]:
    """Join the process group when launched by torchrun; return it and the device to use."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    # FSDP's sharded checkpoints and steps are the same for one rank as for many: torchrun with one
    # process joins a group too, so a run can move between world sizes
    if "RANK" not in os.environ or (world_size <= 1 and not getattr(config, "fsdp", False)):
        return Distributed(), config.device
    dist = Distributed(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), world_size, group=True)
    use_cuda = (auto_device() if config.device == "auto" else config.device).startswith("cuda")
    backend = config.backend if config.backend != "auto" else ("nccl" if use_cuda else "gloo")
    device = config.device
    if use_cuda:
        device = f"cuda:{dist.local_rank}"
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=config.dist_timeout))
    return dist, device


def is_communication_error(exc: BaseException) -> bool:
    if isinstance(exc, getattr(torch.distributed, "DistError", ())):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("gloo", "nccl", "connection closed", "timed out", "connection reset"))
