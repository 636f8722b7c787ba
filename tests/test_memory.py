"""Memory accounting: estimates (fake tensors) against measurements (real tensors), measurements
against the allocator's own record (torch.profiler) and against sizes computed by hand."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from leangpt.memory import MemoryConfig, generation_memory, step_memory, zero_partition
from leangpt.memtrack import CATEGORIES, MemoryTracker
from leangpt.model import GPT, GPTConfig
from leangpt.optim import adamw_state_bytes

SEED = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12)
MEDIUM = dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=2)
VARIANTS = ("adam", "adamw", "adamsn", "adafactor")


def memory_config(shape, **kw) -> MemoryConfig:
    values = dict(device="cpu", vocab_size=65, gradient_accumulation_steps=1, dropout=0.0, **shape)
    values.update(kw)
    return MemoryConfig(**values)


def assert_close(estimated, measured, rel=0.02):
    for key in (*CATEGORIES, "peak", "activations_saved"):
        e, m = getattr(estimated, key), getattr(measured, key)
        assert abs(e - m) <= rel * max(m, 1), f"{key}: estimated {e:,} vs measured {m:,}"


# bf16 on a CPU without bf16 instructions is emulated (3 s a case at the seed size): the full suite runs it
@pytest.mark.parametrize("dtype", ["float32", pytest.param("bfloat16", marks=pytest.mark.slow)])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("attention", ["mha", "mqa"])
@pytest.mark.parametrize("shape", [pytest.param(SEED, id="seed"),
                                   pytest.param(MEDIUM, id="6x384", marks=pytest.mark.slow)])
def test_estimate_equals_measurement(shape, attention, variant, dtype):
    config = memory_config(shape, optimizer_variant=variant, dtype=dtype,
                           n_headgroup=1 if attention == "mha" else shape["n_head"], dropout=0.1)
    estimated = step_memory(config)
    measured = step_memory(dataclasses.replace(config, measure=True))
    assert_close(estimated, measured)
    assert measured.peak == sum(getattr(measured, c) for c in CATEGORIES)


def _profiler_peak(run) -> int:
    """The peak of live bytes as the profiler's allocator events record them (no dispatch mode)."""
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        run()
    live = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action in (Action.PREEXISTING, Action.CREATE):
            live += size
        elif action == Action.DESTROY:
            live -= size
        peak = max(peak, live)
    return peak


@pytest.mark.parametrize("variant,dtype,headgroup", [("adamw", "float32", 1),
                                                     pytest.param("adafactor", "bfloat16", 4, marks=pytest.mark.slow),
                                                     ("adamsn", "float32", 2)])
def test_measured_peak_matches_the_profilers_allocator_record(variant, dtype, headgroup):
    pytest.importorskip("torch.profiler._memory_profiler", reason="torch's memory profiler is private API")
    from leangpt.device import resolve
    from leangpt.memory import _build_optimizer
    from leangpt.model import model_config_from
    from leangpt.step import forward_backward, optimizer_update
    config = memory_config(SEED, optimizer_variant=variant, dtype=dtype, n_headgroup=headgroup, measure=True)
    torch.manual_seed(0)
    model = GPT(model_config_from(config, 65))
    optimizer = _build_optimizer(model, config, 65)
    runtime, scaler = resolve("cpu", dtype), torch.amp.GradScaler(enabled=False)

    def one_step():
        batch = lambda: (torch.randint(0, 65, (12, 64)), torch.randint(0, 65, (12, 64)))
        forward_backward(model, batch, 1, runtime, scaler)
        optimizer_update(model, optimizer, scaler, 1.0)

    one_step()
    allocator_peak = _profiler_peak(one_step)
    tracked = step_memory(config)
    assert abs(tracked.peak - allocator_peak) <= 0.02 * allocator_peak, (tracked.peak, allocator_peak)


def test_categories_against_sizes_computed_by_hand():
    config = memory_config(SEED, optimizer_variant="adamw", measure=True)
    b = step_memory(config)
    model = GPT(GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, bias=False))
    n = sum(p.numel() for p in model.parameters())
    assert b.params == 4 * n
    assert b.optimizer_state == adamw_state_bytes(model)  # two float32 moments and a step per tensor
    # the largest single thing backward keeps: log_softmax's float32 output, batch x block x vocab
    assert b.activations_saved > 12 * 64 * 65 * 4


def test_tracker_by_hand_on_one_linear_layer():
    """y = x W^T, loss = sum(y^2): backward keeps x and y; Adam keeps two moments and a step."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 128, bias=False)
    optimizer = torch.optim.Adam(layer.parameters(), foreach=False)

    def step(phase):
        phase("forward")
        loss = layer(torch.randn(32, 256)).pow(2).sum()
        phase("backward")
        loss.backward()
        phase("optimizer")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        phase("done")

    step(lambda _: None)  # creates Adam's state
    with MemoryTracker(list(layer.parameters()), optimizer) as tracker:
        step(tracker.phase)
    b = tracker.breakdown()
    weight = 128 * 256 * 4
    assert b.params == weight
    assert b.optimizer_state == 2 * weight + 4
    assert b.activations_saved == 32 * 256 * 4 + 32 * 128 * 4 + 4  # x, y and the loss itself
    assert b.peak >= 4 * weight + 4  # the weight, its gradient and both moments at the optimizer step


def test_generation_memory_is_weights_plus_the_kv_cache():
    config = memory_config(SEED, n_headgroup=2, batch_size=3, generate=True)
    b = generation_memory(config)
    model_config = GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, n_headgroup=2)
    assert b.kv_cache == model_config.kv_cache_bytes_per_token() * 3 * 64
    assert b.params == 4 * GPT(dataclasses.replace(model_config, bias=False)).num_params()
    assert b.grads == b.optimizer_state == b.activations == 0
    measured = generation_memory(dataclasses.replace(config, measure=True))
    assert_close(b, measured)


def test_gqa_shrinks_the_kv_cache_by_the_group_size():
    mha = generation_memory(memory_config(SEED, generate=True))
    mqa = generation_memory(memory_config(SEED, generate=True, n_headgroup=4))
    assert mha.kv_cache == 4 * mqa.kv_cache


def test_zero_partition_is_zero_redundancy_optimizers_rule():
    params = [torch.empty(n) for n in (10, 40, 30, 20, 5)]
    # largest first, each to the rank holding fewest elements (the lower rank on a tie):
    # 40 -> r0, 30 -> r1, 20 -> r1, 10 -> r0, 5 -> r0 (50 = 50): r0 holds 55, r1 50
    assert zero_partition(params, 2, [params]) == [{id(params[1]), id(params[0]), id(params[4])},
                                                   {id(params[2]), id(params[3])}]


def _leangpt(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "leangpt", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_memory_json_holds_the_gridded_keys_and_byte_counts():
    out = _leangpt("memory", "--n_layer=2", "--n_head=4", "--n_embd=32", "--block_size=16", "--batch_size=2",
                   "--vocab_size=65", "--gradient_accumulation_steps=1", "--grid=optimizer_variant=adamw,adafactor",
                   "--grid=n_headgroup=1,4", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["optimizer_variant"], r["n_headgroup"]) for r in rows] == [
        ("adamw", 1), ("adamw", 4), ("adafactor", 1), ("adafactor", 4)]
    for r in rows:
        assert {"params", "grads", "optimizer_state", "activations", "temporaries", "peak"} <= set(r)
        assert r["peak"] == sum(r[k] for k in ("params", "grads", "optimizer_state", "activations", "temporaries"))
    assert rows[0]["optimizer_state"] > 20 * rows[2]["optimizer_state"]
    assert rows[1]["params"] < rows[0]["params"]  # MQA has fewer K/V projections


@pytest.mark.slow
def test_memory_table_is_readable():
    out = _leangpt("memory", "--n_layer=2", "--n_head=4", "--n_embd=32", "--block_size=16", "--batch_size=2",
                   "--vocab_size=65", "--generate=True")
    assert out.returncode == 0, out.stderr
    assert "kv cache" in out.stdout and "KiB" in out.stdout


@pytest.mark.parametrize("args,key", [
    (["--world_size=0"], "world_size"),
    (["--n_head=4", "--n_headgroup=3"], "n_headgroup"),
    (["--optimizer_variant=sgd"], "optimizer_variant"),
    (["--n_layer=100000"], "n_layer"),
    (["--zero=True"], "zero"),
    (["--vocab_size=0"], "vocab_size"),
    (["--world_size=3", "--gradient_accumulation_steps=4"], "gradient_accumulation_steps"),
    (["--grid=n_headgroup=1,5", "--n_head=4", "--n_embd=32"], "n_headgroup"),
])
@pytest.mark.slow
def test_memory_bad_input_is_one_line(args, key):
    out = _leangpt("memory", "--n_layer=2", *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and key in lines[0], out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("n_layer,n_head,n_embd", [(12, 12, 768), (24, 16, 1024), (36, 20, 1280), (48, 25, 1600)])
def test_gpt2_shapes_estimate_in_little_memory(n_layer, n_head, n_embd):
    """GPT-2 124M to 1.5B: never allocated (1.5B fp32 parameters alone would be 6 GB)."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("reads the child's VmHWM from /proc (Linux)")
    # the child reports its own high-water resident size: VmHWM belongs to its address space, while
    # ru_maxrss carries the forking parent's over exec on Linux (and pytest is large by then)
    code = ("import re, sys; from pathlib import Path; from leangpt.cli import run; code = run('memory', sys.argv[1:]); "
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1); "
            "print('maxrss', hwm, file=sys.stderr); sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", code, f"--n_layer={n_layer}", f"--n_head={n_head}",
                          f"--n_embd={n_embd}", "--block_size=1024", "--batch_size=8", "--vocab_size=50304", "--json"],
                         capture_output=True, text=True, timeout=900)  # against a hang; speed is benchmarked
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)[0]
    maxrss_kib = int(out.stderr.split("maxrss")[-1].split()[0])
    n_params = 50304 * n_embd + 1024 * n_embd + n_layer * (12 * n_embd * n_embd + 2 * n_embd) + n_embd
    assert row["params"] == 4 * n_params
    assert maxrss_kib * 1024 < 2 * 2**30


def test_zero_shards_the_optimizer_state_and_ddp_holds_one_gradient_buffer():
    one = step_memory(memory_config(SEED, optimizer_variant="adamw"))
    ddp = step_memory(memory_config(SEED, optimizer_variant="adamw", world_size=2, gradient_accumulation_steps=2))
    zero = step_memory(memory_config(SEED, optimizer_variant="adamw", world_size=2, gradient_accumulation_steps=2,
                                     zero=True))
    assert ddp.optimizer_state == one.optimizer_state
    assert ddp.grads >= one.params  # the buckets: a gradient-sized buffer held all along
    assert ddp.grads <= 1.01 * one.params  # and only one: the gradients are views into them
    assert 0.49 * one.optimizer_state <= zero.optimizer_state < 0.6 * one.optimizer_state


def test_activation_checkpointing_estimate_keeps_less_for_backward():
    plain = step_memory(memory_config(MEDIUM))
    recompute = step_memory(memory_config(MEDIUM, activation_checkpointing=True))
    measured = step_memory(memory_config(MEDIUM, activation_checkpointing=True, measure=True))
    assert recompute.activations_saved < 0.5 * plain.activations_saved
    assert_close(recompute, measured)


def test_generation_under_bf16_autocast_keeps_a_bf16_cache():
    config = memory_config(SEED, batch_size=3, generate=True, dtype="bfloat16")
    estimated = generation_memory(config)
    model_config = GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128)
    assert estimated.kv_cache == model_config.kv_cache_bytes_per_token(2) * 3 * 64
    assert_close(estimated, generation_memory(dataclasses.replace(config, measure=True)))


@pytest.mark.slow  # two bf16 estimates at the seed size
@pytest.mark.parametrize("n_headgroup", [1, 4])
def test_an_estimate_for_a_gpu_keeps_bf16_attention_where_cpu_attends_in_fp32(n_headgroup):
    """On CPU, autocast attention runs in fp32, so SDPA saves fp32 q, k, v and output; an estimate
    for a CUDA config (same CPU kernels, fake tensors) models the GPU's bf16 attention instead."""
    cpu = step_memory(memory_config(SEED, dtype="bfloat16", n_headgroup=n_headgroup, device="cpu"))
    gpu = step_memory(memory_config(SEED, dtype="bfloat16", n_headgroup=n_headgroup, device="cuda"))
    b, t, c, layers = SEED["batch_size"], SEED["block_size"], SEED["n_embd"], SEED["n_layer"]
    # at least q and output (c wide) and k, v (c / n_headgroup wide) at 4 instead of 2 bytes, per layer
    fp32_minus_bf16 = layers * b * t * (2 * c + 2 * c // n_headgroup) * (4 - 2)
    assert cpu.activations_saved - gpu.activations_saved >= fp32_minus_bf16
    # in fp32 nothing differs
    assert (step_memory(memory_config(SEED, n_headgroup=n_headgroup, device="cpu")).as_dict()
            == step_memory(memory_config(SEED, n_headgroup=n_headgroup, device="cuda")).as_dict())


def test_a_breakdown_with_no_gradients_at_its_peak_says_why(capsys):
    from leangpt.cli import run
    from leangpt.memtrack import zero_grads_note
    # a vocabulary far larger than the model: the loss's gradient at the start of backward is the peak
    assert run("memory", ["--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=32", "--batch_size=8",
                          "--gradient_accumulation_steps=1", "--vocab_size=1024", "--device=cpu",
                          "--dtype=float32"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].split()[2:4] == ["0", "B"] and "backward" in out[-2].split()  # grads 0 B, peak in backward
    assert out[-1] == ("grads 0 B: the peak comes at the start of backward, before backward makes the first gradient "
                       "(the last step's were freed by zero_grad); the gradients, the weights' size, are all alive "
                       "later, at the optimizer step, below this peak")
    assert zero_grads_note(1024, "backward") == ""
    assert zero_grads_note(0, "forward").startswith("grads 0 B: the peak comes in the forward pass,")
    assert zero_grads_note(0, "backward", optimizer_in_backward=True).startswith(
        "grads 0 B: the optimizer in the backward pass frees each gradient")


def test_an_estimate_over_more_ranks_than_it_simulates_in_a_minute_is_one_line(capsys):
    """--world_size=100000 once ran for minutes building a fake process group of that many ranks."""
    from leangpt.cli import run
    assert run("memory", ["--fsdp=True", "--world_size=100000", "--gradient_accumulation_steps=100000",
                          "--n_layer=2", "--vocab_size=65", "--device=cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: world_size=100000 is more ranks than an estimate simulates "
                                               "in a minute (at most 1024")
