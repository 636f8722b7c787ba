"""Plain-PyTorch references written from the formulas, independent of leangpt's modules."""

import math

import torch
import torch.nn.functional as F


def attention(q, k, v, n_headgroup):
    """q: (B, H, T, D); k, v: (B, H/S, T, D). Each kv-head serves S consecutive query heads."""
    k = k.repeat_interleave(n_headgroup, dim=1)
    v = v.repeat_interleave(n_headgroup, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
    t = q.size(2)
    mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def gpt_logits(sd, idx, n_layer, n_head, n_headgroup=1):
    """A GPT forward pass that reads nanoGPT's state_dict keys directly."""
    def ln(x, prefix):
        return F.layer_norm(x, (x.size(-1),), sd[prefix + ".weight"], sd.get(prefix + ".bias"), 1e-5)

    def linear(x, prefix):
        return F.linear(x, sd[prefix + ".weight"], sd.get(prefix + ".bias"))

    b, t = idx.shape
    x = sd["transformer.wte.weight"][idx] + sd["transformer.wpe.weight"][:t]
    c = x.size(-1)
    d = c // n_head
    n_kv = n_head // n_headgroup
    for i in range(n_layer):
        p = f"transformer.h.{i}"
        qkv = linear(ln(x, p + ".ln_1"), p + ".attn.c_attn")
        q, k, v = qkv.split([n_head * d, n_kv * d, n_kv * d], dim=-1)
        q = q.view(b, t, n_head, d).transpose(1, 2)
        k = k.view(b, t, n_kv, d).transpose(1, 2)
        v = v.view(b, t, n_kv, d).transpose(1, 2)
        y = attention(q, k, v, n_headgroup).transpose(1, 2).reshape(b, t, c)
        x = x + linear(y, p + ".attn.c_proj")
        h = F.gelu(linear(ln(x, p + ".ln_2"), p + ".mlp.c_fc"))
        x = x + linear(h, p + ".mlp.c_proj")
    return ln(x, "transformer.ln_f") @ sd["lm_head.weight"].t()
