"""Device, dtype and autocast choices, resolved once from the config's strings."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .config import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    device: str  # e.g. "cpu", "cuda:0"
    dtype: str  # "float32", "bfloat16" or "float16"

    @property
    def device_type(self) -> str:
        return self.device.split(":", 1)[0]

    def autocast(self):
        """Mixed precision for the forward pass; parameters and optimizer state stay float32."""
        if self.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=DTYPES[self.dtype])


def resolve(device: str, dtype: str) -> Runtime:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
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
    return Runtime(device, dtype)
