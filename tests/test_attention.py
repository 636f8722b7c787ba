
import pytest
import torch

from leangpt.attention import CausalSelfAttention
from leangpt.model import GPT
from tests.helpers import tiny_gpt_config
from tests.reference import attention, gpt_logits

CASES = [(4, 1), (4, 2), (4, 4), (6, 3), (8, 2), (1, 1)]


def cfg(n_head, n_headgroup, **kw):
    """The tiny model with `n_head` heads of its head_dim 8, and room for 24 positions."""
    return tiny_gpt_config(30, **{"block_size": 24, "n_head": n_head, "n_embd": 8 * n_head,
                                  "n_headgroup": n_headgroup, "bias": True, **kw})


@pytest.mark.parametrize("n_head,n_headgroup", CASES)
@pytest.mark.parametrize("impl", ["sdpa", "einsum"])
def test_attention_matches_reference(n_head, n_headgroup, impl):
    c = cfg(n_head, n_headgroup, attn_impl=impl)
    attn = CausalSelfAttention(c).eval()
    x = torch.randn(3, 11, c.n_embd)
    d, kv = c.head_dim, c.n_kv_head
    qkv = attn.c_attn(x)
    q, k, v = qkv.split([n_head * d, kv * d, kv * d], dim=-1)
    q = q.view(3, 11, n_head, d).transpose(1, 2)
    k = k.view(3, 11, kv, d).transpose(1, 2)
    v = v.view(3, 11, kv, d).transpose(1, 2)
    expected = attn.c_proj(attention(q, k, v, n_headgroup).transpose(1, 2).reshape(3, 11, c.n_embd))
    assert torch.allclose(attn(x), expected, atol=1e-5)


@pytest.mark.parametrize("n_head,n_headgroup", CASES)
def test_paths_agree_and_match_reference_model(n_head, n_headgroup):
    sdpa = GPT(cfg(n_head, n_headgroup, dropout=0.1)).eval()  # dropout present but off in eval
    einsum = GPT(cfg(n_head, n_headgroup, dropout=0.1, attn_impl="einsum")).eval()
    einsum.load_state_dict(sdpa.state_dict())
    idx = torch.randint(0, 30, (2, 24))
    a, _ = sdpa(idx, idx)
    b, _ = einsum(idx, idx)
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a, gpt_logits(sdpa.state_dict(), idx, 2, n_head, n_headgroup), atol=1e-5)


def test_weight_layout_and_parameter_count():
    mha, gqa, mqa = (GPT(cfg(4, s)) for s in (1, 2, 4))
    assert mha.transformer.h[0].attn.c_attn.weight.shape == (96, 32)
    assert gqa.transformer.h[0].attn.c_attn.weight.shape == ((4 + 2 * 2) * 8, 32)
    assert mqa.transformer.h[0].attn.c_attn.weight.shape == ((4 + 2) * 8, 32)
    # each layer saves (n_head - n_kv_head) * head_dim rows of K and of V, weight and bias
    per_layer = lambda s: 2 * (4 - 4 // s) * 8 * (32 + 1)
    assert mha.num_params() - gqa.num_params() == 2 * per_layer(2)
    assert mha.num_params() - mqa.num_params() == 2 * per_layer(4)


def test_kv_cache_bytes_are_one_over_s():
    mha = cfg(8, 1).kv_cache_bytes_per_token()
    assert mha == 2 * 2 * 8 * 8 * 4
    for s in (2, 4, 8):
        assert cfg(8, s).kv_cache_bytes_per_token() * s == mha


@pytest.mark.parametrize("n_head,n_headgroup", [(4, 1), (4, 2), (4, 4)])
@pytest.mark.parametrize("impl", ["sdpa", "einsum"])
def test_cached_greedy_generation_equals_uncached(n_head, n_headgroup, impl):
    torch.manual_seed(1)
    model = GPT(cfg(n_head, n_headgroup, attn_impl=impl, block_size=16)).eval()
    for p in model.parameters():  # a sharper model than init: near-ties in argmax become unlikely
        p.data.normal_(0, 0.3)
    prompt = torch.randint(0, 30, (2, 5))
    plain = model.generate(prompt, 40, top_k=1)  # 45 tokens: well past block_size=16
    cached = model.generate(prompt, 40, top_k=1, kv_cache=True)
    assert torch.equal(plain, cached)
    long_prompt = torch.randint(0, 30, (1, 20))  # prompt already longer than the block
    assert torch.equal(model.generate(long_prompt, 10, top_k=1), model.generate(long_prompt, 10, top_k=1, kv_cache=True))


def test_cache_holds_only_kv_heads():
    model = GPT(cfg(8, 4))
    cache = model.new_kv_cache(batch_size=3)
    assert cache.keys[0].shape == (3, 2, 24, 8)
    assert cache.nbytes() == 3 * 24 * model.config.kv_cache_bytes_per_token()


def test_single_token_decode_sees_all_keys():
    """With a full prefix cached, one new query must attend to every key (not only key 0)."""
    model = GPT(cfg(4, 2)).eval()
    idx = torch.randint(0, 30, (1, 10))
    full, _ = model(idx)
    cache = model.new_kv_cache(1)
    model(idx[:, :9], cache=cache)
    step, _ = model(idx[:, 9:], cache=cache)
    assert torch.allclose(full, step, atol=1e-5)
    chunked = model.new_kv_cache(1)  # a multi-token chunk after a prefix: bottom-right mask
    model(idx[:, :4], cache=chunked)
    chunk, _ = model(idx[:, 4:], cache=chunked)
    assert torch.allclose(full, chunk, atol=1e-5)


def test_half_overflow_runs_and_stays_close_to_prompt_semantics():
    model = GPT(cfg(4, 2, block_size=16)).eval()
    prompt = torch.randint(0, 30, (1, 3))
    out = model.generate(prompt, 50, top_k=1, kv_cache=True, cache_overflow="half")
    assert out.shape == (1, 53) and torch.equal(out[:, :3], prompt)
    # inside the block the approximation is not used: identical to the exact path
    exact = model.generate(prompt, 13, top_k=1)
    assert torch.equal(out[:, :16], exact)


def test_generate_rejects_bad_arguments():
    model = GPT(cfg(4, 2))
    idx = torch.zeros(1, 1, dtype=torch.long)
    for kwargs, needle in [({"temperature": 0}, "temperature"), ({"top_k": 0}, "top_k"),
                           ({"cache_overflow": "drop"}, "cache_overflow")]:
        with pytest.raises(ValueError, match=needle):
            model.generate(idx, 1, **kwargs)


def test_under_autocast_the_cache_keeps_the_low_precision_dtype():
    torch.manual_seed(1)
    model = GPT(cfg(4, 2, block_size=16)).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cache = model.new_kv_cache(batch_size=2)
        assert cache.keys[0].dtype == torch.bfloat16
        assert cache.nbytes() == 2 * 16 * model.config.kv_cache_bytes_per_token(2)
        prompt = torch.randint(0, 30, (2, 5))
        assert torch.equal(model.generate(prompt, 11, top_k=1), model.generate(prompt, 11, top_k=1, kv_cache=True))
    assert model.new_kv_cache(batch_size=1).keys[0].dtype == torch.float32


@pytest.mark.parametrize("n_headgroup", [1, 2])
def test_cpu_attention_under_bf16_autocast_is_the_fp32_attention_of_the_bf16_inputs(n_headgroup):
    # on CPU, SDPA's bf16 kernels are slow at small sizes, so leangpt attends in fp32 and casts the
    # result back: it must equal float64 attention of the very bf16 q, k, v, rounded once to bf16
    torch.manual_seed(0)
    attn = CausalSelfAttention(cfg(4, n_headgroup)).eval()
    q = torch.randn(2, 4, 9, 8).to(torch.bfloat16)
    k = torch.randn(2, 4 // n_headgroup, 9, 8).to(torch.bfloat16)
    v = torch.randn(2, 4 // n_headgroup, 9, 8).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = attn._attend_sdpa(q, k, v)
    expected = attention(q.double(), k.double(), v.double(), n_headgroup)
    assert y.dtype == torch.bfloat16
    # one rounding to bf16 of a value computed in fp32: (almost) every element is the reference's
    # own rounding, where SDPA's bf16 kernel matches only ~75% of them
    assert (y == expected.float().to(torch.bfloat16)).float().mean() >= 0.99


def test_cpu_training_step_under_bf16_autocast_has_fp32_grads_for_attention():
    torch.manual_seed(0)
    model = GPT(cfg(4, 2))
    idx = torch.randint(0, 30, (2, 12))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = model(idx, idx)
    loss.backward()
    grad = model.transformer.h[0].attn.c_attn.weight.grad
    assert grad is not None and grad.dtype == torch.float32 and torch.isfinite(grad).all() and grad.abs().sum() > 0
