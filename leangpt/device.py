"""Device, dtype and autocast choices, resolved once from the config's strings."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    device: str  # e.g. "cpu", "cuda:0"
    dtype: str  # "float32", "bfloat16" or "float16"
    weights_cast: bool = False  # FSDP2's mixed-precision policy gathers the weights in `dtype` already

    @property
    def device_type(self) -> str:
        return self.device.split(":", 1)[0]

    def autocast(self):
        """Mixed precision for the forward pass; parameters and optimizer state stay float32."""
        if self.dtype == "float32" or self.weights_cast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=DTYPES[self.dtype])


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo; None where there is none (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            return set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return None


def _shows_bf16(flags: set[str] | None) -> bool:
    return flags is not None and ("avx512_bf16" in flags or "amx_bf16" in flags)


@functools.lru_cache(maxsize=1)
def cpu_has_bf16_instructions() -> bool:
    """AVX512_BF16 or AMX-BF16: bfloat16 matmuls in hardware. Without them torch's CPU kernels
    fall back to slow paths, many times slower than fp32 (docs/benchmarks.md)."""
    flags = _cpu_flags()
    return True if flags is None else _shows_bf16(flags)  # not Linux: trust the caller


def fastest_cpu_dtype() -> str:
    """The dtype the quickstart trains in: bfloat16 autocast where the CPU's flags show bf16
    instructions (faster at fp32's quality there: docs/benchmarks.md), else float32. Unlike the
    guard above it trusts only flags it can read: elsewhere it keeps float32."""
    return "bfloat16" if _shows_bf16(_cpu_flags()) else "float32"


def c_compiler() -> str | None:
    """The C++ compiler torch.compile's CPU backend would call, if there is one."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def auto_device() -> str:
    """What device="auto" means on this machine."""
    return "cuda" if torch.cuda.is_available() else "cpu"


SLOW_BF16_OVERRIDE = "LEANGPT_ALLOW_SLOW_BF16"  # set to 1 to run bf16 on such a CPU anyway (tests do)


def resolve(device: str, dtype: str, check_speed: bool = True) -> Runtime:
    """The device and dtype to run with. `check_speed` refuses combinations that run, but many
    times slower than the default (bf16 on a CPU without bf16 instructions)."""
    if device == "auto":
        device = auto_device()
    kind = device.split(":", 1)[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available here; use --device=cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={device!r} but MPS is not available here; use --device=cpu")
    if dtype == "auto":
        if kind == "cuda":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "float32"
    if dtype == "float16" and kind != "cuda":
        raise ConfigError(f"dtype=float16 needs a CUDA device (it needs a gradient scaler); on {kind} use bfloat16 or float32")
    if (check_speed and kind == "cpu" and dtype == "bfloat16" and not cpu_has_bf16_instructions()
            and os.environ.get(SLOW_BF16_OVERRIDE) != "1"):
        raise ConfigError("dtype=bfloat16 on this CPU (no AVX512_BF16 or AMX instructions) runs in slow fallback "
                          "kernels, measured 12-16x slower than float32: use --dtype=float32 (or set "
                          f"{SLOW_BF16_OVERRIDE}=1 to run it anyway)")
    return Runtime(device, dtype)


def check_compile(device_type: str) -> None:
    """torch.compile on CPU generates C++: without a compiler it fails deep in inductor."""
    if device_type == "cpu" and c_compiler() is None:
        raise ConfigError("compile=True on CPU needs a C++ compiler (g++ or clang++), and none is on PATH: "
                          "install one (e.g. apt install g++) or pass --compile=False")


def available_ram() -> int | None:
    """MemAvailable of /proc/meminfo in bytes; None where there is no such file."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
