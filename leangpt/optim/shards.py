"""What leangpt's own optimizers need to stay exact on FSDP2's shards.

Under `fully_shard` every parameter, its gradient and the state made `like` it are DTensors split
on dim 0: each rank holds a block of rows. Anything elementwise is then right on the local block.
A reduction over rows is not: it must be summed (or minimised) across the ranks, and the result
is the same on every rank (held replicated). These helpers do exactly that and are the identity
for plain tensors, so one code path serves one process and many.

Rows of a 1-D parameter are its elements; a reduction over columns of a 2-D one stays local.
"""

from __future__ import annotations

import torch

try:  # torch >= 2.4 has the public module; leangpt requires 2.5
    from torch.distributed.tensor import DTensor, Replicate, Shard
except ImportError:  # pragma: no cover - a torch built without distributed
    DTensor = None


def is_sharded(t) -> bool:
    return DTensor is not None and isinstance(t, DTensor)


def local(t: torch.Tensor) -> torch.Tensor:
    """The block this rank holds (the tensor itself when it is not sharded)."""
    return t.to_local() if is_sharded(t) else t


def shard_group(params) -> object | None:
    """The process group the parameters' rows are split over; None in one process. FSDP shards
    every parameter of a model or none: a mix means a model sharded in part, refused."""
    sharded = [is_sharded(p) for p in params]
    if not any(sharded):
        return None
    if not all(sharded):
        raise ValueError("some parameters are sharded (DTensors) and some are not: shard the whole model "
                         "with leangpt.fsdp.shard_model before building the optimizer")
    for p in params:
        if tuple(p.placements) != (Shard(0),):
            raise ValueError(f"a parameter is placed {p.placements}, not Shard(0) on one mesh dimension "
                             "(FSDP2's layout): leangpt's optimizers reduce over that layout only")
    return params[0].device_mesh.get_group()


def all_reduce(t: torch.Tensor, group, op=None) -> torch.Tensor:
    """`t` (in place) reduced over `group`, a sum unless `op` says otherwise; untouched without a group."""
    if group is not None:
        torch.distributed.all_reduce(t, op=op or torch.distributed.ReduceOp.SUM, group=group)
    return t


def sum_over_rows(partials: list[torch.Tensor], group) -> list[torch.Tensor]:
    """Each rank's partial sums over its rows, made whole: one all-reduce for the whole list."""
    if group is None or not partials:
        return partials
    flat = torch.cat([t.reshape(-1) for t in partials])
    all_reduce(flat, group)
    return [chunk.view_as(t) for chunk, t in zip(flat.split([t.numel() for t in partials]), partials)]


def zeros_like_rows(p: torch.Tensor, rows: int | None, cols: int | None, dtype=None) -> torch.Tensor:
    """State for a reduction of `p`: shape (rows, 1) when it keeps p's rows (sharded as p is), or
    (1, cols) when it reduces them away (the same on every rank). Plain zeros for a plain `p`."""
    dtype = dtype or p.dtype
    keeps_rows = rows is not None
    shape = (rows, 1) if keeps_rows else (1, cols)
    if not is_sharded(p):
        return torch.zeros(shape, dtype=dtype, device=p.device)
    block = local(p)
    local_shape = (block.shape[0], 1) if keeps_rows else shape
    zeros = torch.zeros(local_shape, dtype=dtype, device=block.device)
    return DTensor.from_local(zeros, p.device_mesh, [Shard(0)] if keeps_rows else [Replicate()],
                              run_check=False, shape=torch.Size(shape), stride=(1, 1) if keeps_rows else (cols, 1))


def gather_rows(block: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The whole matrix of which `block` holds this rank's rows, laid out as `p` is sharded (an
    all-gather: its bytes are what a whole-matrix method costs on shards)."""
    if not is_sharded(p):
        return block
    return DTensor.from_local(block, p.device_mesh, p.placements, run_check=False, shape=p.shape,
                              stride=p.stride()).full_tensor()


def row_offset(p: torch.Tensor) -> int:
    """The index of this rank's first row of `p` (FSDP2 splits rows as torch.chunk does)."""
    if not is_sharded(p):
        return 0
    ranks, rank = p.device_mesh.size(), p.device_mesh.get_local_rank()
    return min(rank * -(-p.shape[0] // ranks), p.shape[0])
