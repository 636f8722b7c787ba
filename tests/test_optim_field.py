"""The wider field of optimizers: AdamSNSM (ours) by hand, the glue around torch's Muon and the
libraries' optimizers, their state bytes, and that every variant trains, resumes exactly and runs
under DDP and ZeRO (or refuses ZeRO in one line)."""

import copy
import importlib
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

from leangpt.cli import main
from leangpt.optim import AdamSN, AdamSNSM, build_optimizer, state_bytes
from leangpt.optim import field
from leangpt.variants import NAMES
from tests.helpers import (assert_resume_is_exact, assert_same_losses, common_args, launch, losses, metrics,
                           run_train, tiny_config, tiny_gpt)

# the field beyond the course's four, from the registry (a new entry is tested here without editing this file)
NEW_VARIANTS = [name for name in NAMES if name not in ("adam", "adamw", "adamsn", "adafactor")]
# small ranks and a short refresh gap, so that the tiny model has real subspaces that change
SMALL = dict(adamsnsm_rank=8, adamsnsm_update_proj_gap=4, galore_rank=8, galore_update_proj_gap=4,
             apollo_rank=8, apollo_update_proj_gap=4)


def variant_settings(variant):
    lr = {"sm3": 3e-2, "came": 1e-3}.get(variant, 3e-3)
    return dict(optimizer_variant=variant, learning_rate=lr, min_lr=lr / 10, **SMALL)


# ------------------------------------------------------------------------------ AdamSNSM
def adamsnsm_by_hand(w, grads, lr, beta1, beta2, eps, wd, rank, gap):
    """The update of leangpt/optim/adamsnsm.py's docstring, in float64 numpy."""
    w = w.copy()
    n, m = w.shape
    tall = n >= m
    v = np.zeros((n, 1) if tall else (1, m))
    for t, g in enumerate(grads, 1):
        u, _, vh = np.linalg.svd(g, full_matrices=False)
        if t == 1 or t % gap == 0:
            basis = vh[:rank] if tall else u[:, :rank]
            mom = np.zeros((n, rank) if tall else (rank, m))
            start = t
        low = g @ basis.T if tall else basis.T @ g
        back = (lambda x: x @ basis) if tall else (lambda x: basis @ x)
        mom = beta1 * mom + (1 - beta1) * low
        v = beta2 * v + (1 - beta2) * (g * g).sum(axis=1 if tall else 0, keepdims=True)
        update = back(mom) / (1 - beta1 ** (t - start + 1)) + g - back(low)
        w = w * (1 - lr * wd)
        w = w - lr * update / (np.sqrt(v / (1 - beta2 ** t)) + eps)
    return w


@pytest.mark.parametrize("shape", [(6, 4), (3, 5)])
def test_adamsnsm_three_steps_with_a_refresh_by_hand(shape):
    gen = torch.Generator().manual_seed(3)
    w0 = torch.randn(shape, generator=gen, dtype=torch.float64)
    grads = [torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(3)]
    p = nn.Parameter(w0.clone())
    opt = AdamSNSM([{"params": [p], "rank": 2, "update_proj_gap": 2, "weight_decay": 0.1}],
                   lr=0.05, betas=(0.9, 0.99), eps=1e-8)
    for g in grads:  # refreshes at steps 1 and 2; step 3 keeps step 2's subspace
        p.grad = g.clone()
        opt.step()
    expected = adamsnsm_by_hand(w0.numpy(), [g.numpy() for g in grads], 0.05, 0.9, 0.99, 1e-8, 0.1, 2, 2)
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    state = opt.state[p]
    big, small = max(shape), min(shape)
    assert state["exp_avg"].numel() == 2 * big and state["projection"].numel() == 2 * small


def test_adamsnsm_with_a_full_rank_subspace_and_no_refresh_is_adamsn():
    gen = torch.Generator().manual_seed(4)
    w0 = torch.randn(8, 5, generator=gen, dtype=torch.float64)
    grads = [torch.randn(8, 5, generator=gen, dtype=torch.float64) for _ in range(5)]
    a, b = nn.Parameter(w0.clone()), nn.Parameter(w0.clone())
    sm = AdamSNSM([{"params": [a], "rank": 5, "update_proj_gap": 1000}], lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)
    sn = AdamSN([b], lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)
    for g in grads:
        a.grad, b.grad = g.clone(), g.clone()
        sm.step()
        sn.step()
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_adamsnsm_refuses_a_bad_rank():
    with pytest.raises(ValueError, match="rank"):
        AdamSNSM([{"params": [nn.Parameter(torch.zeros(3, 3))], "rank": 0, "update_proj_gap": 2}])


# ------------------------------------------------------------------------------ glue
def small_gpt(seed=0, n_headgroup=2):
    return tiny_gpt(vocab_size=40, seed=seed, n_headgroup=n_headgroup)


def random_grads(model, gen):
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen)


def test_muon_with_adamw_equals_torch_muon_and_adamw_side_by_side():
    ours, ref = small_gpt(), small_gpt()
    config = tiny_config("d", "o", optimizer_variant="muon", learning_rate=0.01, weight_decay=0.1)
    opt = build_optimizer(ours, config)
    hidden = [p for n, p in ref.named_parameters() if n.startswith("transformer.h.") and p.dim() == 2]
    ids = {id(p) for p in hidden}
    rest = [p for p in ref.parameters() if id(p) not in ids]
    muon = torch.optim.Muon(hidden, lr=0.01, weight_decay=0.1, momentum=0.95, nesterov=True, ns_steps=5,
                            adjust_lr_fn="match_rms_adamw")
    adamw = torch.optim.AdamW([{"params": [p for p in rest if p.dim() >= 2], "weight_decay": 0.1},
                               {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0}],
                              lr=0.01, betas=(config.beta1, config.beta2), eps=config.eps)
    for step in range(3):
        random_grads(ours, torch.Generator().manual_seed(step))
        random_grads(ref, torch.Generator().manual_seed(step))
        opt.step()
        muon.step()
        adamw.step()
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # one state_dict, loadable into a fresh combined optimizer, which then continues identically
    twin = small_gpt()
    twin.load_state_dict(ours.state_dict())
    twin_opt = build_optimizer(twin, config)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # as from a file: no shared tensors
    for o, m in ((opt, ours), (twin_opt, twin)):
        random_grads(m, torch.Generator().manual_seed(9))
        o.step()
    for a, b in zip(ours.parameters(), twin.parameters()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_adamw8bit_state_bytes_count_codes_and_block_scales():
    pytest.importorskip("torchao")
    layer = nn.Linear(512, 256)  # weight: 131072 values, quantized in blocks of 256; bias: 256, kept in fp32
    opt = field.adamw8bit_class()(layer.parameters(), lr=1e-3, block_size=256)
    layer(torch.randn(2, 512)).sum().backward()
    opt.step()
    weight_moment = 131072 * 1 + (131072 // 256) * 4 + 256 * 4  # uint8 codes + fp32 block scales + code book
    expected = 2 * weight_moment + 4 + 2 * 256 * 4 + 4  # two moments and a float32 step, per parameter
    assert state_bytes(opt) == expected
    assert state_bytes(opt) < 0.3 * (2 * 4 * (131072 + 256))


def test_adam_mini_keeps_one_second_moment_per_query_key_and_value_head():
    pytest.importorskip("pytorch_optimizer")
    model = small_gpt(n_headgroup=2)  # 4 query heads, 2 key/value heads, head_dim 8
    opt = build_optimizer(model, tiny_config("d", "o", optimizer_variant="adam_mini", learning_rate=1e-3))
    gen = torch.Generator().manual_seed(1)
    random_grads(model, gen)
    c_attn = model.transformer.h[0].attn.c_attn.weight
    g = c_attn.grad.clone()
    opt.step()
    v = opt.state[c_attn]["v_mean"]
    assert v.shape == (4 + 2 + 2,)
    # (1 - beta2) * the mean squared gradient of each head's head_dim x n_embd block
    heads = g.view(8, 8 * 32)
    torch.testing.assert_close(v, (1 - 0.95) * heads.square().mean(dim=1))
    wte = model.transformer.wte.weight
    assert opt.state[wte]["v"].shape == wte.shape  # the embedding keeps full Adam


def test_a_missing_extra_is_one_line_naming_it(tiny_data, tmp_path, capsys, monkeypatch):
    real = importlib.import_module

    def without(name, *args):
        if name.startswith("pytorch_optimizer"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", f"--data_dir={tiny_data}", "--dataset=tiny", f"--out_dir={tmp_path / 'o'}", "--device=cpu",
              "--compile=False", "--optimizer_variant=lion", "--max_iters=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code != 0 and len(err) == 1
    assert "pytorch_optimizer" in err[0] and "leangpt[optimizers]" in err[0]


# ------------------------------------------------------------------------------ every variant in the trainer
@pytest.mark.parametrize("variant", [pytest.param(v, marks=pytest.mark.slow) if v == "adamw8bit" else v
                                     for v in NEW_VARIANTS])  # adamw8bit compiles its step
def test_every_new_variant_trains_and_resumes_exactly(tiny_data, tmp_path, variant):
    result, straight = assert_resume_is_exact(tiny_data, tmp_path, n_headgroup=2, **variant_settings(variant))
    train_losses = [float(line.split("loss ")[1]) for line in losses(straight) if line.startswith("iter")]
    assert train_losses[-1] < train_losses[0] - 0.3
    assert 0 < result["optimizer_state_bytes"] and any("x AdamW's" in line for line in straight)


def _distributed_args(tiny_data, out, variant, **kw):
    settings = {k: v for k, v in variant_settings(variant).items()}
    return common_args(tiny_data, out, n_headgroup=2, **settings, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("variant", NEW_VARIANTS)
def test_every_new_variant_under_ddp_and_zero_equals_one_process(tiny_data, tmp_path, variant):
    single = str(tmp_path / "single")
    launch(_distributed_args(tiny_data, single, variant, batch_size=8, gradient_accumulation_steps=1))
    reference = metrics(single)
    for zero in (False, True):
        out = str(tmp_path / f"ddp-zero{zero}")
        launch(_distributed_args(tiny_data, out, variant, batch_size=4, gradient_accumulation_steps=2, zero=zero),
               world_size=2)
        # APOLLO's random projections differ per rank's share under ZeRO (each rank draws for the
        # parameters it owns), so ZeRO changes its numbers; the rest compute the same step
        # GaLore's SVD refresh (every 4 steps here) turns the all-reduce's rounding (2 ranks sum in
        # another order than one process) into another basis where singular values nearly tie: on an
        # Intel Xeon with AMX the losses are 1e-7 apart until iteration 4, then up to 1.6e-3
        if not (zero and variant == "apollo"):
            assert_same_losses(metrics(out), reference, tol=5e-3 if variant == "galore" else 1e-4)
        assert os.path.getsize(os.path.join(out, "ckpt.pt")) > 0


@pytest.mark.slow
def test_an_adamw8bit_checkpoint_loads_in_a_fresh_process(tiny_data, tmp_path):
    """A process that never imported torchao (a sweep's parent, sample.py) still reads it."""
    run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=2, **variant_settings("adamw8bit")))
    import subprocess
    import sys
    code = ("import sys; from leangpt import checkpoint; c = checkpoint.load(sys.argv[1]); "
            "assert 'torchao' not in sys.modules or c['optimizer']['state']; print('ok')")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "o" / "ckpt.pt")], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_muon_on_a_torch_without_it_is_one_line_naming_the_version(tiny_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", f"--data_dir={tiny_data}", "--dataset=tiny", f"--out_dir={tmp_path / 'o'}", "--device=cpu",
              "--compile=False", "--optimizer_variant=muon", "--max_iters=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code != 0 and len(err) == 1 and "torch 2.9" in err[0]
