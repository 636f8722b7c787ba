"""Causal self-attention with grouped key/value heads (MHA, GQA and MQA in one module).

`n_headgroup` query heads share one key/value head: n_kv_head = n_head // n_headgroup, and query
head h attends with kv-head h // n_headgroup (contiguous groups, the convention of every major
implementation). Only n_kv_head K and V projections exist, so parameters, projection compute and
the KV cache all shrink by the group size. (Averaging the K/V of full heads at every forward pass,
as nanoGPT course handouts do, computes the same function as a converted model but saves nothing;
that averaging belongs in checkpoint conversion, see convert.py.)

c_attn's rows are [q heads 0..n_head-1; k kv-heads; v kv-heads], each head's head_dim rows
contiguous: with n_headgroup=1 this is exactly nanoGPT's layout.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import einsum, rearrange


class KVCache:
    """Per-layer keys and values of the tokens seen so far, kept at n_kv_head (never expanded).

    The buffers are allocated once, at `capacity` tokens. A decode step (one new token) attends to
    the whole buffer with the unused tail masked out, so every decode step has the same shapes:
    nothing is reallocated per token, and the step is one graph for torch.compile.
    """

    def __init__(self, n_layer: int, batch_size: int, n_kv_head: int, capacity: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype):
        shape = (batch_size, n_kv_head, capacity, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.capacity = capacity
        self.length = 0  # tokens cached; the same for every layer once a forward pass ends
        self._slots = torch.arange(capacity, device=device)
        self.decode_mask: torch.Tensor | None = None  # (1, 1, 1, capacity) during a decode step

    def reset(self) -> None:
        self.length = 0

    def begin(self, new_tokens: int) -> None:
        """Called once per forward pass, before the layers append their new_tokens keys."""
        if self.length + new_tokens > self.capacity:
            raise ValueError(f"KV cache overflow: {self.length + new_tokens} tokens > capacity {self.capacity}")
        self.decode_mask = (self._slots <= self.length).view(1, 1, 1, -1) if new_tokens == 1 else None

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new tokens' k, v for `layer`; return the keys and values to attend to: the
        whole buffer in a decode step (with `decode_mask`), else everything cached so far."""
        start, end = self.length, self.length + k.size(2)
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        if self.decode_mask is not None:
            return self.keys[layer], self.values[layer]
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)


def causal_mask(q_len: int, k_len: int, device: torch.device) -> torch.Tensor:
    """Bottom-right aligned: the last query is the newest token and sees every key."""
    offset = k_len - q_len
    rows = torch.arange(q_len, device=device).unsqueeze(1)
    cols = torch.arange(k_len, device=device).unsqueeze(0)
    return cols <= rows + offset


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer_index: int = 0):
        super().__init__()
        assert config.n_embd % config.n_head == 0 and config.n_head % config.n_headgroup == 0
        self.n_head = config.n_head
        self.n_headgroup = config.n_headgroup
        self.n_kv_head = config.n_head // config.n_headgroup
        self.head_dim = config.n_embd // config.n_head
        self.layer_index = layer_index
        self.impl = config.attn_impl
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, (self.n_head + 2 * self.n_kv_head) * self.head_dim,
                                bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        # a speed choice for CPU, not architecture (see _attend_sdpa); a memory estimate of a GPU
        # step, which runs CPU kernels on fake tensors, turns it off to model the GPU's attention
        self.cpu_attention_in_fp32 = True

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        q_width, kv_width = self.n_head * self.head_dim, self.n_kv_head * self.head_dim
        q, k, v = self.c_attn(x).split([q_width, kv_width, kv_width], dim=2)
        q = rearrange(q, "b t (h d) -> b h t d", h=self.n_head)
        k = rearrange(k, "b t (g d) -> b g t d", g=self.n_kv_head)
        v = rearrange(v, "b t (g d) -> b g t d", g=self.n_kv_head)
        key_mask = None
        if cache is not None:
            k, v = cache.append(self.layer_index, k, v)
            key_mask = cache.decode_mask
        attend = self._attend_sdpa if self.impl == "sdpa" else self._attend_einsum
        y = attend(q, k, v, key_mask)
        y = rearrange(y, "b h t d -> b t (h d)")
        return self.resid_dropout(self.c_proj(y))

    def _attend_sdpa(self, q, k, v, key_mask=None):
        q_len, k_len = q.size(2), k.size(2)
        # is_causal is top-left aligned: right only when queries and keys are the same tokens.
        # A decode step's query sees every cached key: its mask only hides the buffer's unused tail.
        mask, is_causal = key_mask, False
        if key_mask is None and q_len == k_len:
            is_causal = True
        elif key_mask is None and q_len > 1:
            mask = causal_mask(q_len, k_len, q.device)
        # CPU's SDPA kernels are slower in bf16 than in fp32 at the sizes trained on CPU
        # (docs/benchmarks.md), so under autocast attention runs in fp32 there; autocast is paused
        # or it would cast straight back
        out_dtype = q.dtype
        upcast = self.cpu_attention_in_fp32 and q.device.type == "cpu" and out_dtype in (torch.bfloat16, torch.float16)
        if upcast:
            q, k, v = q.float(), k.float(), v.float()
        with torch.autocast("cpu", enabled=False) if upcast else contextlib.nullcontext():
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=is_causal,
                dropout_p=self.dropout if self.training else 0.0,
                enable_gqa=self.n_headgroup > 1)
        return y.to(out_dtype)

    def _attend_einsum(self, q, k, v, key_mask=None):
        # The readable reference: the group axis g is explicit and K/V are never copied per head.
        q = rearrange(q, "b (g s) i d -> b g s i d", s=self.n_headgroup)
        scores = einsum(q, k, "b g s i d, b g j d -> b g s i j") / math.sqrt(self.head_dim)
        mask = key_mask.unsqueeze(1) if key_mask is not None else causal_mask(q.size(3), k.size(2), q.device)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = self.attn_dropout(F.softmax(scores, dim=-1))
        y = einsum(weights, v, "b g s i j, b g j d -> b g s i d")
        return rearrange(y, "b g s i d -> b (g s) i d")
