import copy
import math

import pytest
import torch

from leangpt.optim import Adafactor, AdamSN, state_bytes


def make_params(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]


def run(optimizer, params, steps, seed=1, skip=None):
    """Feed the same pseudo-random gradients to any optimizer; `skip` leaves a param's grad None."""
    g = torch.Generator().manual_seed(seed)
    for t in range(steps):
        for i, p in enumerate(params):
            grad = torch.randn(p.shape, generator=g) * (0.1 + i)
            p.grad = None if skip and skip(t, i) else grad
        optimizer.step()


SHAPES = [(7, 3), (3, 7), (5,), (2, 3, 4), (6, 6)]


def test_adamsn_without_subset_norm_is_adamw():
    ours, ref = make_params(SHAPES), make_params(SHAPES)
    groups = lambda ps, sn: [{"params": ps[:2], "weight_decay": 0.1, **sn},
                             {"params": ps[2:4], "weight_decay": 0.0, "lr": 3e-3, **sn},
                             {"params": ps[4:], "weight_decay": 0.05, "betas": (0.8, 0.99), **sn}]
    opt = AdamSN(groups(ours, {"subset_norm": False}), lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    ref_opt = torch.optim.AdamW(groups(ref, {}), lr=1e-2, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    skip = lambda t, i: i == 1 and t % 3 == 0  # missing grads: per-parameter step counts differ
    run(opt, ours, 100, skip=skip)
    run(ref_opt, ref, 100, skip=skip)
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7), (a - b).abs().max()


def adamsn_by_hand(w, grads, lr, beta1, beta2, eps, wd):
    """Element-by-element AdamSN on a list-of-lists matrix, written from the definition."""
    n, m = len(w), len(w[0])
    tall = n >= m
    w = [row[:] for row in w]
    mom = [[0.0] * m for _ in range(n)]
    v = [0.0] * (n if tall else m)
    for t, g in enumerate(grads, start=1):
        for k in range(len(v)):
            s = sum(g[k][j] ** 2 for j in range(m)) if tall else sum(g[i][k] ** 2 for i in range(n))
            v[k] = beta2 * v[k] + (1 - beta2) * s
        for i in range(n):
            for j in range(m):
                w[i][j] *= 1 - lr * wd
                mom[i][j] = beta1 * mom[i][j] + (1 - beta1) * g[i][j]
                vk = v[i] if tall else v[j]
                m_hat = mom[i][j] / (1 - beta1 ** t)
                w[i][j] -= lr * m_hat / (math.sqrt(vk / (1 - beta2 ** t)) + eps)
    return w, v


@pytest.mark.parametrize("shape", [(3, 2), (2, 3)])
def test_adamsn_two_steps_by_hand(shape):
    torch.manual_seed(3)
    w0 = torch.randn(shape, dtype=torch.float64)
    grads = [torch.randn(shape, dtype=torch.float64) for _ in range(2)]
    p = torch.nn.Parameter(w0.clone())
    opt = AdamSN([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    expected, v = adamsn_by_hand(w0.tolist(), [g.tolist() for g in grads], 0.1, 0.9, 0.99, 1e-8, 0.1)
    assert torch.allclose(p.detach(), torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    v_state = opt.state[p]["exp_avg_sq"]
    assert v_state.shape == ((3, 1) if shape == (3, 2) else (1, 3))
    assert torch.allclose(v_state.flatten(), torch.tensor(v, dtype=torch.float64))


def test_adamsn_beta1_zero_keeps_no_first_moment():
    p = make_params([(6, 4)])[0]
    opt = AdamSN([p], lr=0.01, betas=(0.0, 0.99))
    w0 = p.detach().clone()
    g = torch.randn(6, 4)
    p.grad = g.clone()
    opt.step()
    assert set(opt.state[p]) == {"step", "exp_avg_sq"}
    v = 0.01 * (g ** 2).sum(dim=1, keepdim=True)
    expected = w0 - 0.01 * g / ((v / (1 - 0.99)).sqrt() + 1e-8)
    assert torch.allclose(p.detach(), expected, atol=1e-6)


ORACLE_SHAPES = [(5,), (4, 6), (2, 3, 5), (9, 2)]


def test_adafactor_equals_torch_adafactor():
    ours, ref = make_params(ORACLE_SHAPES), make_params(ORACLE_SHAPES)
    groups = lambda ps: [{"params": ps[:2], "weight_decay": 0.01}, {"params": ps[2:], "weight_decay": 0.0}]
    opt = Adafactor(groups(ours), lr=1e-2, decay_rate=-0.8, eps=(None, 1e-3), clip_threshold=1.0)
    ref_opt = torch.optim.Adafactor(groups(ref), lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, foreach=False)
    run(opt, ours, 100)
    run(ref_opt, ref, 100)
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7), (a - b).abs().max()


def adafactor_by_hand(w, grads, lr, beta1, decay, eps1, eps2, d, wd, relative_step, scale_parameter):
    """Adafactor on a 2-D float64 tensor, one step at a time from the formulas."""
    w = w.clone()
    rows = torch.zeros(w.shape[0], 1, dtype=w.dtype)
    cols = torch.zeros(1, w.shape[1], dtype=w.dtype)
    mom = torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        beta2 = 1 - t ** decay
        rows = beta2 * rows + (1 - beta2) * (g * g).mean(dim=1, keepdim=True)
        cols = beta2 * cols + (1 - beta2) * (g * g).mean(dim=0, keepdim=True)
        v_hat = rows @ cols / rows.mean()
        u = g / torch.clamp(v_hat.sqrt(), min=eps1)
        u = u / max(1.0, (u.pow(2).mean().sqrt() / d).item())
        rho = min(lr, 1 / math.sqrt(t)) if relative_step else lr
        alpha = max(eps2, w.pow(2).mean().sqrt().item()) * rho if scale_parameter else rho
        w = w * (1 - lr * wd)
        if beta1 is None:
            w = w - alpha * u
        else:
            mom = beta1 * mom + (1 - beta1) * u
            w = w - alpha * mom
    return w


@pytest.mark.parametrize("options", [
    {"relative_step": False, "scale_parameter": True, "beta1": None},
    {"relative_step": False, "scale_parameter": False, "beta1": None},
    {"relative_step": True, "scale_parameter": False, "beta1": None},
    {"relative_step": False, "scale_parameter": True, "beta1": 0.9},
    {"relative_step": True, "scale_parameter": True, "beta1": 0.8, "clip_threshold": 0.05, "weight_decay": 0.1},
])
def test_adafactor_options_by_hand(options):
    torch.manual_seed(5)
    w0 = torch.randn(4, 3, dtype=torch.float64)
    grads = [torch.randn(4, 3, dtype=torch.float64) * 0.1 for _ in range(3)]
    p = torch.nn.Parameter(w0.clone())
    opt = Adafactor([p], lr=0.05, eps=(1e-30, 1e-3), **options)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    expected = adafactor_by_hand(w0, grads, 0.05, options["beta1"], -0.8, 1e-30, 1e-3,
                                 options.get("clip_threshold", 1.0), options.get("weight_decay", 0.0),
                                 options["relative_step"], options["scale_parameter"])
    assert torch.allclose(p.detach().double(), expected, rtol=1e-5, atol=1e-7)


def test_adafactor_keeps_float32_state_for_bf16_params():
    p = torch.nn.Parameter(torch.randn(8, 4).to(torch.bfloat16))
    opt = Adafactor([p], lr=1e-2, beta1=0.9)
    p.grad = torch.randn(8, 4).to(torch.bfloat16)
    opt.step()
    assert all(t.dtype == torch.float32 for k, t in opt.state[p].items() if torch.is_tensor(t))
    assert p.dtype == torch.bfloat16


@pytest.mark.parametrize("factory", [
    lambda ps: AdamSN(ps, lr=1e-2, weight_decay=0.1),
    lambda ps: AdamSN(ps, lr=1e-2, betas=(0.0, 0.99)),
    lambda ps: Adafactor(ps, lr=1e-2, beta1=0.9, relative_step=False, weight_decay=0.1),
])
def test_state_dict_round_trip_continues_identically(factory):
    params = make_params(SHAPES)
    opt = factory(params)
    run(opt, params, 5, seed=2)
    saved_params = copy.deepcopy([p.detach().clone() for p in params])
    saved_state = copy.deepcopy(opt.state_dict())
    run(opt, params, 5, seed=9)
    resumed = [torch.nn.Parameter(t.clone()) for t in saved_params]
    opt2 = factory(resumed)
    opt2.load_state_dict(saved_state)
    run(opt2, resumed, 5, seed=9)
    for a, b in zip(params, resumed):
        assert torch.equal(a, b)


def test_state_bytes_by_hand():
    layer = torch.nn.Linear(8, 4)  # weight (4, 8): wide, so AdamSN keeps v of shape (1, 8)
    x = torch.randn(3, 8)

    def step(opt):
        layer.zero_grad()
        layer(x).sum().backward()
        opt.step()
        return state_bytes(opt)

    # AdamW: exp_avg + exp_avg_sq for 32 + 4 elements, plus a float32 step tensor per param
    assert step(torch.optim.AdamW(layer.parameters())) == 2 * 36 * 4 + 2 * 4
    # AdamSN: weight m (32) + v (8); bias m (4) + v (4); steps are ints, not tensors
    assert step(AdamSN(layer.parameters())) == (32 + 8 + 4 + 4) * 4
    assert step(AdamSN(layer.parameters(), betas=(0.0, 0.999))) == (8 + 4) * 4
    # Adafactor: weight rows (4) + cols (8); bias full variance (4); + momentum if beta1
    assert step(Adafactor(layer.parameters())) == (4 + 8 + 4) * 4
    assert step(Adafactor(layer.parameters(), beta1=0.9)) == (4 + 8 + 4 + 36) * 4


@pytest.mark.parametrize("factory", [
    lambda p: AdamSN(p, lr=-1), lambda p: AdamSN(p, betas=(1.0, 0.9)), lambda p: AdamSN(p, betas=(0.9,)),
    lambda p: AdamSN(p, eps=-1e-8), lambda p: AdamSN(p, weight_decay=-0.1), lambda p: AdamSN(p, lr=float("nan")),
    lambda p: Adafactor(p, lr=-1), lambda p: Adafactor(p, beta1=1.5), lambda p: Adafactor(p, decay_rate=0.5),
    lambda p: Adafactor(p, eps=(None, -1)), lambda p: Adafactor(p, eps=(1e-30,)), lambda p: Adafactor(p, clip_threshold=0),
    lambda p: Adafactor(p, weight_decay=-1),
])
def test_invalid_hyperparameters_raise(factory):
    with pytest.raises(ValueError):
        factory(make_params([(2, 2)]))


@pytest.mark.parametrize("cls", [AdamSN, Adafactor])
def test_sparse_gradients_are_refused(cls):
    emb = torch.nn.Embedding(10, 4, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(ValueError, match="sparse"):
        cls(emb.parameters()).step()


@pytest.mark.parametrize("cls", [AdamSN, Adafactor])
def test_closure_and_none_grads(cls):
    a, b = make_params([(3, 3), (3,)])
    opt = cls([a, b], lr=1e-2)
    b_before = b.detach().clone()

    def closure():
        opt.zero_grad()
        loss = (a ** 2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss is not None and torch.equal(b, b_before) and b not in opt.state


def test_adafactor_equals_torch_where_eps1_clamps():
    """Zero rows and columns (an unused embedding row, say) drive V_hat below eps1^2."""
    ours, ref = make_params([(6, 5), (4,)]), make_params([(6, 5), (4,)])
    opt = Adafactor(ours, lr=1e-2)
    ref_opt = torch.optim.Adafactor(ref, lr=1e-2, foreach=False)
    g = torch.Generator().manual_seed(4)
    for _ in range(20):
        grads = [torch.randn(p.shape, generator=g) for p in ours]
        grads[0][1:3] = 0.0
        grads[0][:, 2] = 0.0
        grads[1][0] = 0.0
        for a, b, gr in zip(ours, ref, grads):
            a.grad, b.grad = gr.clone(), gr.clone()
        opt.step()
        ref_opt.step()
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7), (a - b).abs().max()
