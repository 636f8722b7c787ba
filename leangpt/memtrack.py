"""Tensor-level memory accounting of one training step: what is alive, what it is, and the peak.

`MemoryTracker` is a TorchDispatchMode: every aten op of the step passes through it, and it
records each new tensor storage (its size, the phase it was born in) and, through a weakref
finalizer, the moment the storage is freed. From that timeline it finds the peak of live bytes
and breaks it down by what each storage turned out to be:

    params           the model's parameters (registered before the step)
    grads            the storages that end up in `p.grad` (labelled when the optimizer phase begins)
    optimizer_state  the tensors in `optimizer.state` (labelled before and after the step)
    kv_cache         the KV cache of generation (labelled by the caller)
    activations      storages born in a forward pass and still alive when it ends: what autograd
                     keeps for backward (autocast's low-precision weight copies included)
    temporaries      everything else: freed inside the phase that made them

Why our own dispatch mode rather than torch.distributed._tools.mem_tracker.MemTracker: that
module is private, changed across the torch versions leangpt supports (>= 2.5), and names
activations by the module that produced them, not by whether backward keeps them. A dispatch
mode is the one mechanism that is the same on CPU, CUDA and fake tensors, so an estimate (fake
tensors, no memory) and a measurement (real tensors) run the very same accounting, and their
difference is only what the real kernels allocate. Storages shared by views are counted once.
Allocations a kernel makes internally (workspaces) are not tensors and are not seen; on CUDA
compare against `torch.cuda.max_memory_allocated` for those.
"""

from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .optim.shards import is_sharded

CATEGORIES = ("params", "grads", "optimizer_state", "kv_cache", "activations", "temporaries")
_PRIORITY = {name: i for i, name in enumerate(CATEGORIES)}


@dataclass
class MemoryBreakdown:
    """Bytes alive at the peak of the step, by category (they sum to `peak`)."""

    params: int = 0
    grads: int = 0
    optimizer_state: int = 0
    kv_cache: int = 0
    activations: int = 0
    temporaries: int = 0
    peak: int = 0
    peak_phase: str = ""  # the phase the peak fell in: forward, backward, optimizer, ...
    activations_saved: int = 0  # bytes a forward pass leaves for backward (the largest micro-step)

    def as_dict(self) -> dict:
        return asdict(self)


def zero_grads_note(grads: int, peak_phase: str, optimizer_in_backward: bool = False) -> str:
    """Why a step's breakdown shows `grads 0 B` (else ""): no gradient is alive at its peak."""
    if grads:
        return ""
    if optimizer_in_backward:
        return ("grads 0 B: the optimizer in the backward pass frees each gradient as soon as its weight is "
                "stepped, so none is alive at the peak")
    return (f"grads 0 B: the peak comes {'in the forward pass' if peak_phase == 'forward' else 'at the start of backward'}"
            ", before backward makes the first gradient (the last step's were freed by zero_grad); the gradients, "
            "the weights' size, are all alive later, at the optimizer step, below this peak")


@dataclass
class _Record:
    nbytes: int
    phase: str
    born: int
    died: int | None = None
    label: str | None = None  # params, grads, optimizer_state, kv_cache: set by label()


class MemoryTracker(TorchDispatchMode):
    """Use as `with MemoryTracker(params) as t: ...; t.phase("forward") ...`, then `t.breakdown()`."""

    def __init__(self, params=(), optimizer=None):
        super().__init__()
        self._records: list[_Record] = []
        self._live: dict[int, int] = {}  # id(storage) -> index into _records, while it lives
        self._clock = 0
        self._live_bytes = 0
        self._peak = (-1, 0, "")  # (clock, bytes, phase)
        self._phase = "setup"
        self._forward_start = 0
        self._activations_saved = 0
        self._closed = False
        self._params = [p for p in params]
        self._optimizer = optimizer
        self.label("params", self._params)
        if optimizer is not None:
            self.label("optimizer_state", _state_tensors(optimizer))

    # ------------------------------------------------------------------ bookkeeping
    def _register(self, tensor: torch.Tensor) -> int | None:
        if is_sharded(tensor):  # an FSDP shard: what this rank stores is its local block
            tensor = tensor.to_local()
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse or storage-less tensors
            return None
        key = id(storage)
        index = self._live.get(key)
        if index is not None:
            return index
        index = len(self._records)
        self._records.append(_Record(storage.nbytes(), self._phase, self._tick()))
        self._live[key] = index
        self._live_bytes += storage.nbytes()
        if self._live_bytes > self._peak[1]:
            self._peak = (self._clock, self._live_bytes, self._phase)
        weakref.finalize(storage, self._free, key, index)
        return index

    def _free(self, key: int, index: int) -> None:
        if self._closed or self._live.get(key) != index:
            return
        del self._live[key]
        record = self._records[index]
        record.died = self._tick()
        self._live_bytes -= record.nbytes

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def label(self, category: str, tensors) -> None:
        """Name what these tensors' storages are (a higher-priority label is never overridden)."""
        if category not in _PRIORITY:
            raise ValueError(f"unknown memory category {category!r}; one of {', '.join(CATEGORIES)}")
        for t in tensors:
            if not torch.is_tensor(t):
                continue
            index = self._register(t)
            if index is None:
                continue
            record = self._records[index]
            if record.label is None or _PRIORITY[category] < _PRIORITY[record.label]:
                record.label = category

    def phase(self, name: str) -> None:
        """Mark a new phase. Entering "backward" closes a forward pass: its survivors are activations;
        entering "optimizer" labels the gradients."""
        if self._phase == "forward" and name != "forward":
            saved = sum(r.nbytes for r in self._records[self._forward_start:] if r.died is None
                        and r.phase == "forward" and r.label is None)
            for r in self._records[self._forward_start:]:
                if r.died is None and r.phase == "forward":
                    r.phase = "activation"
            self._activations_saved = max(self._activations_saved, saved)
        if name == "forward":
            self._forward_start = len(self._records)
        if name == "optimizer":
            self.label("grads", [p.grad for p in self._params if p.grad is not None])
        self._phase = name

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs, _ = tree_flatten((args, kwargs))
        for t in inputs:  # tensors made outside the mode (a batch from numpy) count from first use
            if isinstance(t, torch.Tensor):
                self._register(t)
        out = func(*args, **kwargs)
        outputs, _ = tree_flatten(out)
        for t in outputs:
            if isinstance(t, torch.Tensor):
                self._register(t)
        return out

    def __enter__(self):
        self._unpatch = _follow_fsdp_storage(self._storage_resized)
        return super().__enter__()

    def _storage_resized(self, tensor: torch.Tensor) -> None:
        """FSDP2 frees a gathered weight by resizing its storage to 0 bytes and gathers into the
        same storage again later: end the old record, and start a new one when it has bytes."""
        index = self._live.pop(id(tensor.untyped_storage()), None)
        if index is not None:
            self._records[index].died = self._tick()
            self._live_bytes -= self._records[index].nbytes
        if tensor.untyped_storage().nbytes():
            self._register(tensor)

    def __exit__(self, *exc):
        self._unpatch()
        if self._optimizer is not None:
            self.label("optimizer_state", _state_tensors(self._optimizer))
        result = super().__exit__(*exc)
        self._closed = True
        return result

    # ------------------------------------------------------------------ results
    def breakdown(self) -> MemoryBreakdown:
        clock, peak, phase = self._peak
        out = MemoryBreakdown(peak=max(peak, 0), peak_phase=phase, activations_saved=self._activations_saved)
        for r in self._records:
            if r.born <= clock and (r.died is None or r.died > clock):
                category = r.label or ("activations" if r.phase == "activation" else "temporaries")
                setattr(out, category, getattr(out, category) + r.nbytes)
        return out


def _follow_fsdp_storage(resized) -> callable:
    """Calls `resized(tensor)` after each storage resize FSDP2 makes (no aten op shows them to a
    dispatch mode), while FSDP2 is loaded; returns what undoes it. Its helpers are private
    (torch/distributed/fsdp/_fully_shard/_fsdp_param.py), so a torch without them is left alone."""
    import sys
    param = sys.modules.get("torch.distributed.fsdp._fully_shard._fsdp_param")
    group = sys.modules.get("torch.distributed.fsdp._fully_shard._fsdp_param_group")
    targets = [(m, name) for m in (param, group) if m is not None
               for name in ("alloc_storage", "free_storage") if hasattr(m, name)]
    originals = {(id(m), name): getattr(m, name) for m, name in targets}

    def following(fn):
        def call(tensor):
            fn(tensor)
            resized(tensor)
        return call

    for m, name in targets:
        setattr(m, name, following(originals[(id(m), name)]))

    def undo():
        for m, name in targets:
            setattr(m, name, originals[(id(m), name)])
    return undo


def _state_tensors(optimizer) -> list[torch.Tensor]:
    from .optim import state_tensors  # the same walk as optim.state_bytes: subclasses, projector objects
    return [t for state in optimizer.state.values() for t in state_tensors(state)]


class FakeScalars(TorchDispatchMode):
    """Gives fake tensors a value when Python asks for one (`.item()`, `.tolist()`: the host syncs
    of an optimizer step). Memory does not depend on these values, only on shapes and dtypes."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            t = args[0]
            return False if t.dtype == torch.bool else (1.0 if t.is_floating_point() else 1)
        return func(*args, **(kwargs or {}))
