"""The memory stack: chunked linear cross-entropy and the optimizer step inside the backward pass,
each against the plain computation it replaces, and their memory estimated == measured."""

import dataclasses
import math
import re

import pytest
import torch
import torch.nn.functional as F

from leangpt import checkpoint
from leangpt.cli import run
from leangpt.config import TrainConfig
from leangpt.device import resolve
from leangpt.errors import ConfigError
from leangpt.loss import chunked_cross_entropy
from leangpt.memory import step_memory
from leangpt.optim import build_optimizer
from leangpt.step import forward_backward, optimizer_update
from leangpt.train import set_learning_rate
from leangpt.variants import NAMES, VARIANTS
from tests.helpers import common_args, losses, run_train, tiny_config, tiny_gpt
from tests.test_memory import CATEGORIES, MEDIUM, SEED, assert_close, memory_config


def _grads(model, idx, targets, dtype=None):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False):
        _, loss = model(idx, targets)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("n_headgroup", [1, 2])
@pytest.mark.parametrize("chunk", [1, 5, 16, 1000])
def test_chunked_loss_and_every_gradient_equal_the_plain_model(chunk, n_headgroup):
    model = tiny_gpt(vocab_size=40, n_headgroup=n_headgroup)
    idx, targets = torch.randint(0, 40, (2, 3, 16))
    targets[0, :4] = -1  # nanoGPT's ignore_index
    plain_loss, plain = _grads(model, idx, targets)
    model.loss_chunk_size = chunk
    loss, chunked = _grads(model, idx, targets)
    assert torch.allclose(loss, plain_loss, rtol=1e-6, atol=0)
    for name in plain:  # the tied embedding gets both its uses' gradients
        scale = plain[name].abs().max()
        assert (chunked[name] - plain[name]).abs().max() <= 1e-6 * scale + 1e-12, name


def test_chunked_loss_under_bf16_autocast_is_within_autocasts_tolerance():
    model = tiny_gpt(vocab_size=40)
    idx, targets = torch.randint(0, 40, (2, 3, 16))
    plain_loss, plain = _grads(model, idx, targets, torch.bfloat16)
    model.loss_chunk_size = 7
    loss, chunked = _grads(model, idx, targets, torch.bfloat16)
    assert abs(loss - plain_loss) < 1e-2 * plain_loss
    for name in plain:
        assert (chunked[name] - plain[name]).abs().max() <= 2e-2 * plain[name].abs().max() + 1e-6, name


def test_chunked_loss_by_hand_on_a_tiny_vocabulary():
    hidden = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    targets = torch.tensor([0, 1, -1])
    # token 0: logits (1, 0, 1); token 1: logits (0, 2, -2); token 2 has no target
    by_hand = ((math.log(2 * math.e + 1) - 1) + (math.log(1 + math.e ** 2 + math.e ** -2) - 2)) / 2
    assert chunked_cross_entropy(hidden, weight, targets, 2).item() == pytest.approx(by_hand, rel=1e-6)
    assert torch.isnan(chunked_cross_entropy(hidden, weight, torch.full((3,), -1), 2))  # as F.cross_entropy
    assert torch.isnan(F.cross_entropy(hidden @ weight.t(), torch.full((3,), -1), ignore_index=-1))


IN_BACKWARD = [name for name in NAMES if VARIANTS[name].in_backward]


def _steps(variant, in_backward, grad_clip, steps=4):
    """`steps` optimizer steps of the tiny model with dropout, the lr changing each step."""
    model = tiny_gpt(vocab_size=40, seed=1, dropout=0.1)
    config = TrainConfig(optimizer_variant=variant, learning_rate=1e-2, grad_clip=grad_clip, optimizer_in_backward=in_backward,
                         gradient_accumulation_steps=1, galore_rank=4, galore_update_proj_gap=2, adamsnsm_rank=4,
                         adamsnsm_update_proj_gap=2)
    optimizer = build_optimizer(model, config)
    runtime, scaler = resolve("cpu", "float32"), torch.amp.GradScaler(enabled=False)
    data = torch.Generator().manual_seed(0)
    torch.manual_seed(5)
    for i in range(steps):
        set_learning_rate(optimizer, 1e-2 * (i + 1) / steps)
        batch = lambda: (torch.randint(0, 40, (3, 16), generator=data), torch.randint(0, 40, (3, 16), generator=data))
        forward_backward(model, batch, 1, runtime, scaler, optimizer=optimizer, grad_clip=grad_clip)
        optimizer_update(model, optimizer, scaler, grad_clip)
        assert all(p.grad is None for p in model.parameters())
    return model.state_dict(), optimizer.state_dict()


@pytest.mark.parametrize("grad_clip", [0.0, 1.0])
@pytest.mark.parametrize("variant", [pytest.param(v, marks=pytest.mark.slow) if v == "adamw8bit" else v
                                     for v in IN_BACKWARD])  # adamw8bit compiles its step
def test_optimizer_in_backward_equals_the_plain_step(variant, grad_clip):
    plain, plain_state = _steps(variant, False, grad_clip)
    stepped, stepped_state = _steps(variant, True, grad_clip)
    for name in plain:
        assert torch.allclose(stepped[name], plain[name], rtol=1e-6, atol=1e-9), name
    assert plain_state["param_groups"] == stepped_state["param_groups"]  # the checkpoint format too
    assert plain_state["state"].keys() == stepped_state["state"].keys()


def test_the_trainer_with_the_stack_equals_the_plain_trainer_and_resumes_across_modes(tiny_data, tmp_path):
    settings = dict(dropout=0.1, max_iters=12, lr_decay_iters=12, eval_interval=4, optimizer_variant="adamw")
    _, plain = run_train(tiny_config(tiny_data, tmp_path / "plain", **settings))
    stack = dict(chunked_loss=True, loss_chunk_size=5, optimizer_in_backward=True, activation_checkpointing=True)
    _, stacked = run_train(tiny_config(tiny_data, tmp_path / "stack", **settings, **stack))
    assert losses(stacked) == losses(plain)
    # half plain, half with the stack: the same run (one checkpoint format)
    run_train(tiny_config(tiny_data, tmp_path / "mixed", **{**settings, "max_iters": 8}))
    _, resumed = run_train(tiny_config(tiny_data, tmp_path / "mixed", init_from="resume", **settings, **stack))
    assert losses(resumed) == [line for line in losses(plain) if int(line.split()[1].rstrip(":")) >= 8
                               and not line.startswith("step 8:")]
    a = checkpoint.load(tmp_path / "plain" / "ckpt.pt")["model"]
    b = checkpoint.load(tmp_path / "mixed" / "ckpt.pt")["model"]
    assert all(torch.allclose(a[k], b[k], rtol=1e-6, atol=1e-9) for k in a)


@pytest.mark.parametrize("overrides,needle", [
    (dict(optimizer_variant="apollo"), "optimizer_variant=apollo"),
    (dict(gradient_accumulation_steps=4), "--gradient_accumulation_steps=1"),
    (dict(zero=True), "--zero=False"),
    (dict(dtype="float16"), "--dtype=bfloat16"),
])
def test_what_the_step_in_backward_cannot_run_is_one_line_naming_the_key(tiny_data, tmp_path, capsys, overrides, needle):
    args = common_args(tiny_data, tmp_path / "o", **{"optimizer_in_backward": True, "gradient_accumulation_steps": 1,
                                                     "max_iters": 2, **overrides})
    assert run("train", args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: optimizer_in_backward=True") and needle in err[0], err
    assert not (tmp_path / "o").exists()  # refused before any work
    with pytest.raises(ConfigError, match="loss_chunk_size"):
        TrainConfig(loss_chunk_size=0).validate()


STACK = [dict(chunked_loss=True), dict(optimizer_in_backward=True), dict(optimizer_in_backward=True, grad_clip=0.0),
         dict(chunked_loss=True, optimizer_in_backward=True, activation_checkpointing=True)]


@pytest.mark.parametrize("options", STACK, ids=["chunked", "in_backward", "in_backward_noclip", "all"])
@pytest.mark.parametrize("variant", ["adamw", "adafactor"])
@pytest.mark.parametrize("shape", [pytest.param(SEED, id="seed"),
                                   pytest.param(MEDIUM, id="6x384", marks=pytest.mark.slow)])
def test_the_stacks_estimate_equals_measurement(shape, variant, options):
    config = memory_config(shape, optimizer_variant=variant, loss_chunk_size=64, **options)
    estimated = step_memory(config)
    measured = step_memory(dataclasses.replace(config, measure=True))
    assert_close(estimated, measured)
    assert measured.peak == sum(getattr(measured, c) for c in CATEGORIES)


def test_the_stack_takes_what_it_promises_off_the_peak():
    plain = step_memory(memory_config(MEDIUM, optimizer_variant="adamw"))
    chunked = step_memory(memory_config(MEDIUM, optimizer_variant="adamw", chunked_loss=True, loss_chunk_size=64))
    stepped = step_memory(memory_config(MEDIUM, optimizer_variant="adamw", optimizer_in_backward=True))
    tokens = MEDIUM["batch_size"] * MEDIUM["block_size"]
    # log-softmax's output (tokens x vocab floats) is not kept; one float per token (its logsumexp) is
    assert chunked.activations_saved <= plain.activations_saved - tokens * 65 * 4 + tokens * 4 + 64
    assert stepped.grads < 0.2 * plain.params  # no full set of gradients at any time


@pytest.mark.slow
def test_chunked_loss_compiled_equals_eager(tiny_data, tmp_path):
    from leangpt.device import c_compiler
    if c_compiler() is None:
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    settings = dict(max_iters=4, lr_decay_iters=4, eval_interval=2, chunked_loss=True, loss_chunk_size=24)
    _, eager = run_train(tiny_config(tiny_data, tmp_path / "eager", **settings))
    _, compiled = run_train(tiny_config(tiny_data, tmp_path / "compiled", compile=True, **settings))
    numbers = lambda lines: [float(x) for line in losses(lines) for x in re.findall(r"loss ([\d.]+)", line)]
    assert numbers(compiled) == pytest.approx(numbers(eager), rel=1e-5)


@pytest.mark.parametrize("bucket_bytes", [0, 3000])
@pytest.mark.parametrize("variant", ["adamw", "adamsn", "adafactor", "lion", "muon"])
def test_stepping_alone_or_in_mixed_buckets_equals_the_plain_step(variant, bucket_bytes, monkeypatch):
    # 0: every parameter steps alone as its gradient completes; 3000 bytes: the tiny model's
    # matrices step alone and its LayerNorms, biases and smaller matrices together in buckets
    from leangpt.optim import in_backward
    monkeypatch.setattr(in_backward, "BUCKET_BYTES", bucket_bytes)
    plain, _ = _steps(variant, False, 1.0)
    stepped, _ = _steps(variant, True, 1.0)
    for name in plain:
        assert torch.allclose(stepped[name], plain[name], rtol=1e-6, atol=1e-9), name


def test_small_gradients_wait_in_a_bucket_and_step_together():
    from leangpt.optim.in_backward import StepInBackward
    torch.manual_seed(0)
    big, small_a, small_b = (torch.nn.Parameter(torch.randn(n)) for n in (300, 20, 30))
    inner = torch.optim.SGD([big, small_a, small_b], lr=0.1)
    calls = []

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            calls.append([tuple(p.shape) for p in self.param_groups[0]["params"]])
            return super().step(closure)

    stepping = StepInBackward(inner, lambda group: Recording([group], lr=0.1), bucket_bytes=1000)
    before = [p.detach().clone() for p in (big, small_a, small_b)]
    stepping.begin_step()
    (big.sum() * 2 + small_a.sum() * 3 + small_b.sum() * 4).backward()
    stepping.end_step()
    # 300 floats (1200 bytes) step alone; 20 + 30 floats (200 bytes) wait for the backward's end
    assert sorted(calls, key=len) == [[(300,)], [(20,), (30,)]] or sorted(calls, key=len) == [[(300,)], [(30,), (20,)]]
    for p, old, g in zip((big, small_a, small_b), before, (2, 3, 4)):
        assert torch.allclose(p.detach(), old - 0.1 * g) and p.grad is None


@pytest.mark.slow  # torchao compiles its step
def test_adamw8bit_state_in_the_estimate_is_what_torchao_makes_in_a_real_step():
    from leangpt.model import GPT, model_config_from
    from leangpt.optim import optimizer_spec, state_bytes
    config = memory_config(SEED, optimizer_variant="adamw8bit")
    torch.manual_seed(0)
    model = GPT(model_config_from(config, 65))
    cls, groups, kwargs = optimizer_spec(model, config)
    real = cls(groups, **kwargs)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    real.step()  # torchao's own compiled step, on real tensors
    estimated = step_memory(config)
    measured = step_memory(dataclasses.replace(config, measure=True))
    # the seed model has 8-bit matrices (codes + block scales + maps) and fp32 moments for its small tensors
    assert estimated.optimizer_state == measured.optimizer_state == state_bytes(real)
    assert state_bytes(real) < 0.5 * sum(2 * 4 * p.numel() for p in model.parameters())
    assert_close(estimated, measured)


def test_the_state_only_stand_in_refuses_an_optimizer_it_does_not_know():
    from leangpt.memory import StateOnlyStep
    with pytest.raises(TypeError, match="not a torchao low-bit optimizer"):
        StateOnlyStep(torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1))
