"""A GPT language model with nanoGPT's architecture and exactly nanoGPT's state_dict layout.

Pre-LayerNorm transformer blocks, learned absolute position embeddings, a GELU MLP, and the
output layer tied to the token embedding. Attention (with grouped K/V heads) is in attention.py.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch.utils.checkpoint import checkpoint

from .attention import CausalSelfAttention, KVCache
from .loss import chunked_cross_entropy


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    n_headgroup: int = 1  # query heads per key/value head: 1 = MHA, n_head = MQA
    attn_impl: Literal["sdpa", "einsum"] = "sdpa"
    gelu: Literal["exact", "tanh"] = "exact"  # nanoGPT's nn.GELU(); OpenAI's GPT-2 weights were trained with tanh

    def __post_init__(self):
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "n_headgroup"):
            if getattr(self, name) < 1:
                raise ValueError(f"GPTConfig.{name}={getattr(self, name)} must be >= 1")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.n_head % self.n_headgroup:
            raise ValueError(f"GPTConfig.n_headgroup={self.n_headgroup} must divide n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout={self.dropout} must be in [0, 1)")
        if self.gelu not in ("exact", "tanh"):
            raise ValueError(f"GPTConfig.gelu={self.gelu!r} must be 'exact' or 'tanh'")
        if self.attn_impl not in ("sdpa", "einsum"):
            raise ValueError(f"GPTConfig.attn_impl={self.attn_impl!r} must be 'sdpa' or 'einsum'")

    @property
    def n_kv_head(self) -> int:
        return self.n_head // self.n_headgroup

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def kv_cache_bytes_per_token(self, bytes_per_element: int = 4) -> int:
        return 2 * self.n_layer * self.n_kv_head * self.head_dim * bytes_per_element


# what a trained model's weights are shaped by (dropout and attn_impl are training choices)
ARCHITECTURE_KEYS = tuple(f.name for f in dataclasses.fields(GPTConfig) if f.name not in ("dropout", "attn_impl"))


def model_config_from(config, vocab_size: int) -> GPTConfig:
    """The model a training config (any object with GPTConfig's field names) describes, for a
    dataset of `vocab_size` tokens."""
    return GPTConfig(vocab_size=vocab_size, **{f.name: getattr(config, f.name)
                                               for f in dataclasses.fields(GPTConfig) if f.name != "vocab_size"})


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch's has no bias=False before 2.1)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh" if config.gelu == "tanh" else "none")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_index: int):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer_index)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache: KVCache | None = None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # recompute each block's forward in the backward instead of keeping its activations (a
        # training choice, not part of the architecture: it is not saved with the model)
        self.activation_checkpointing = False
        self.loss_chunk_size = 0  # > 0: the loss a chunk of tokens at a time (loss.py), also a training choice
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        # GPT-2's scaled init of the projections that write into the residual stream
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self, exclude_position_embedding: bool = False) -> int:
        """Distinct parameters (the tied embedding counted once)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if exclude_position_embedding else n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None):
        _, t = idx.shape
        start = cache.length if cache is not None else 0
        if start + t > self.config.block_size:
            raise ValueError(f"cannot forward {start + t} positions; block_size is {self.config.block_size}")
        if cache is not None:
            cache.begin(t)
        pos = torch.arange(start, start + t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled() and cache is None
        for block in self.transformer.h:
            # non-reentrant checkpointing replays the saved RNG state, so dropout matches the plain run
            x = checkpoint(block, x, use_reentrant=False) if recompute else block(x, cache)
        if cache is not None:
            cache.length += t
        x = self.transformer.ln_f(x)
        if targets is not None:
            if self.loss_chunk_size:  # the logits never exist whole (evaluation included): none to return
                return None, chunked_cross_entropy(x, self.lm_head.weight, targets, self.loss_chunk_size)
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
            return logits, loss
        return self.lm_head(x[:, [-1], :]), None  # inference needs only the last position

    def new_kv_cache(self, batch_size: int) -> KVCache:
        """Room for block_size tokens, in the dtype K and V are computed in: under autocast that is
        the low precision one (a float32 cache would double its memory and be cast back each step)."""
        c, p = self.config, self.lm_head.weight
        return KVCache(c.n_layer, batch_size, c.n_kv_head, c.block_size, c.head_dim, p.device, self.compute_dtype())

    def compute_dtype(self) -> torch.dtype:
        device_type = self.lm_head.weight.device.type
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
        return self.lm_head.weight.dtype

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, kv_cache: bool = False,
                 cache_overflow: Literal["exact", "half"] = "exact") -> torch.Tensor:
        """Append `max_new_tokens` sampled tokens to `idx` (B, T).

        Without a cache every step re-reads the last block_size tokens (nanoGPT's behaviour). With
        `kv_cache=True` each step feeds only the new token while the sequence fits the block.
        Past the block, cropping shifts every token's learned position, so no cached K/V stays
        valid: `cache_overflow="exact"` then re-reads the full window each step (identical to
        the uncached path); `"half"` re-reads only the last block_size//2 tokens and decodes
        with the cache again until it fills (faster, approximate: not what nanoGPT computes).
        """
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 0")
        if not temperature > 0:
            raise ValueError(f"temperature={temperature} must be > 0")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k={top_k} must be None or >= 1")
        if cache_overflow not in ("exact", "half"):
            raise ValueError(f"cache_overflow={cache_overflow!r} must be 'exact' or 'half'")
        if idx.dim() != 2 or idx.size(1) < 1:
            raise ValueError("idx must be a (batch, time) tensor with at least one token")
        block = self.config.block_size
        cache = self.new_kv_cache(idx.size(0)) if kv_cache else None
        start = max(0, idx.size(1) - block)  # position of the cache's first token in idx
        for _ in range(max_new_tokens):
            if cache is None:
                logits, _ = self(idx[:, -block:])
            else:
                if idx.size(1) - start > block:  # the newest token does not fit: slide the window
                    start = idx.size(1) - (block if cache_overflow == "exact" else max(1, block // 2))
                    cache.reset()
                logits, _ = self(idx[:, start + cache.length:], cache=cache)
            next_id = self._sample(logits[:, -1, :], temperature, top_k)
            idx = torch.cat((idx, next_id), dim=1)
        return idx

    @staticmethod
    def _sample(logits: torch.Tensor, temperature: float, top_k: int | None) -> torch.Tensor:
        logits = logits / temperature
        if top_k is not None:
            v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
            logits = logits.masked_fill(logits < v[:, [-1]], float("-inf"))
        if top_k == 1:
            return logits.argmax(dim=-1, keepdim=True)  # greedy: deterministic, no RNG drawn
        return torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
