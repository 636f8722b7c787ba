import math

import pytest
import torch

from leangpt.checkpoint import clean_state_dict
from leangpt.model import GPT
from tests.helpers import tiny_gpt_config
from tests.reference import gpt_logits


def small(**kw):
    return tiny_gpt_config(**{"vocab_size": 20, **kw})


def test_shapes_and_initial_loss():
    model = GPT(small(vocab_size=65))
    idx, targets = torch.randint(0, 65, (2, 3, 16))
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 16, 65)
    assert abs(loss.item() - math.log(65)) < 0.1
    logits, loss = model(idx)
    assert logits.shape == (3, 1, 65) and loss is None


def test_state_dict_has_nanogpt_keys_and_shapes():
    c = small(bias=True)
    sd = GPT(c).state_dict()
    expected = {"transformer.wte.weight": (20, 32), "transformer.wpe.weight": (16, 32),
                "transformer.ln_f.weight": (32,), "transformer.ln_f.bias": (32,), "lm_head.weight": (20, 32)}
    for i in range(2):
        p = f"transformer.h.{i}."
        expected.update({
            p + "ln_1.weight": (32,), p + "ln_1.bias": (32,), p + "ln_2.weight": (32,), p + "ln_2.bias": (32,),
            p + "attn.c_attn.weight": (96, 32), p + "attn.c_attn.bias": (96,),
            p + "attn.c_proj.weight": (32, 32), p + "attn.c_proj.bias": (32,),
            p + "mlp.c_fc.weight": (128, 32), p + "mlp.c_fc.bias": (128,),
            p + "mlp.c_proj.weight": (32, 128), p + "mlp.c_proj.bias": (32,)})
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert sd["lm_head.weight"].data_ptr() == sd["transformer.wte.weight"].data_ptr()  # tied


@pytest.mark.parametrize("bias", [True, False])
def test_matches_reference_forward_from_state_dict(bias):
    """A state_dict in nanoGPT's layout ([q; k; v] rows, heads contiguous) means the same model."""
    model = GPT(small(bias=bias))
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    for k in sd:  # random values everywhere, so that a wrong layout cannot pass
        sd[k].normal_(0, 0.2)
    sd["lm_head.weight"] = sd["transformer.wte.weight"]
    model.load_state_dict(sd)
    idx = torch.randint(0, 20, (2, 16))
    logits, _ = model(idx, idx)
    assert torch.allclose(logits, gpt_logits(sd, idx, 2, 4), atol=1e-5)


def test_upstream_checkpoint_keys_load():
    """torch.compile's prefix and old nanoGPT's mask buffers are stripped on load."""
    model = GPT(small())
    sd = {"_orig_mod." + k: v for k, v in model.state_dict().items()}
    sd["_orig_mod.transformer.h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 16, 16))
    fresh = GPT(small())
    fresh.load_state_dict(clean_state_dict(sd))
    idx = torch.randint(0, 20, (1, 8))
    assert torch.equal(fresh(idx)[0], model(idx)[0])


def test_bad_model_config():
    with pytest.raises(ValueError, match="n_headgroup=3 must divide n_head=4"):
        small(n_headgroup=3)
    with pytest.raises(ValueError, match="divisible by n_head"):
        small(n_embd=30)


def test_forward_longer_than_block_is_an_error():
    with pytest.raises(ValueError, match="block_size is 16"):
        GPT(small())(torch.zeros(1, 17, dtype=torch.long))
