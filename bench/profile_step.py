"""Where one training step's time goes: torch.profiler over leangpt's own step (forward, backward,
clip, optimizer), operators grouped into what a step is made of.

    python bench/profile_step.py CONFIG.py --key=value ... [--iters=10] [--vocab_size=65] [--top=0]

The model, optimizer and dtype (float32, or bfloat16 autocast) come from the training config (random batches of `vocab_size` tokens:
speed does not depend on the text). After 20 warm-up steps, `--iters` steps run under the
profiler; each operator's own (self) CPU time is summed into a group, and the table gives each
group's share of the step and its ms per step. `--top=N` also lists the N slowest operators.
Two reference points come first: the GFLOP/s of one large `torch.mm` (2048^3) in fp32 and bf16,
and the time of SDPA forward + backward at the config's attention shape in fp32 and bf16.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leangpt.config import TrainConfig, parse_config  # noqa: E402
from leangpt.model import GPT  # noqa: E402
from leangpt.optim import build_optimizer  # noqa: E402
from leangpt.model import model_config_from  # noqa: E402

# the first group whose words appear in an operator's name takes its time
GROUPS = (("matmul (mm, addmm, bmm)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul")),
          ("attention (SDPA kernels)", ("scaled_dot_product", "flash_attention")),
          ("GELU", ("gelu",)),
          ("LayerNorm", ("layer_norm",)),
          ("cross-entropy", ("log_softmax", "nll_loss")),
          ("embedding", ("embedding",)),
          ("copies and casts", ("copy_", "_to_copy", "clone", "contiguous")))
PHASES = ("forward", "backward", "clip", "optimizer")


def group_of(name: str) -> str:
    return next((label for label, words in GROUPS if any(w in name for w in words)), "other (elementwise, views, autograd)")


def phase_of(event) -> str:
    """The step phase an operator ran in: the record_function range it lies under."""
    while event is not None:
        if event.name in PHASES:
            return event.name
        event = event.cpu_parent
    return "outside"


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def reference_points(config: TrainConfig) -> None:
    n = 2048
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        print(f"one {n}x{n}x{n} torch.mm in {dtype}: {2 * n ** 3 / _median_seconds(lambda: a @ b, 5) / 1e9:.0f} GFLOP/s")
    head_dim = config.n_embd // config.n_head
    shape = (config.batch_size, config.n_head, config.block_size, head_dim)
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = (torch.randn(shape, dtype=dtype, requires_grad=True) for _ in range(3))
        step = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()
        print(f"SDPA forward + backward, {'x'.join(map(str, shape))} causal, {dtype}: "
              f"{_median_seconds(step, 20) * 1000:.2f} ms")


def main(argv: list[str]) -> None:
    opts = {a.split("=", 1)[0][2:]: a.split("=", 1)[1] for a in argv if a.startswith(("--iters=", "--vocab_size=", "--top="))}
    iters, vocab, top = int(opts.get("iters", 10)), int(opts.get("vocab_size", 65)), int(opts.get("top", 0))
    config = parse_config(TrainConfig, [a for a in argv if not a.startswith(("--iters=", "--vocab_size=", "--top="))])
    reference_points(config)
    torch.manual_seed(config.seed)
    model = GPT(model_config_from(config, vocab))
    optimizer = build_optimizer(model, config)
    # CPU only (the profile is of the host's operators): --dtype=bfloat16 profiles the autocast step
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.dtype == "bfloat16")
    batch = config.batch_size * config.gradient_accumulation_steps
    x, y = torch.randint(0, vocab, (batch, config.block_size)), torch.randint(0, vocab, (batch, config.block_size))

    def step():
        with torch.profiler.record_function("forward"), autocast:
            _, loss = model(x, y)
        with torch.profiler.record_function("backward"):
            loss.backward()
        with torch.profiler.record_function("clip"):
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        with torch.profiler.record_function("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    for _ in range(20):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iters):
            step()
    groups: dict[tuple[str, str], float] = {}
    for e in prof.events():
        if e.self_cpu_time_total > 0:
            phase = phase_of(e)
            key = (phase, group_of(e.name) if phase in ("forward", "backward") else "all")
            groups[key] = groups.get(key, 0.0) + e.self_cpu_time_total
    total = sum(groups.values())
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {iters} profiled steps, "
          f"{total / iters / 1000:.2f} ms/step under the profiler")
    print("| phase | operators | share | ms/step |")
    print("|---|---|---:|---:|")
    for (phase, label), t in sorted(groups.items(), key=lambda kv: (PHASES.index(kv[0][0]) if kv[0][0] in PHASES else 9, -kv[1])):
        print(f"| {phase} | {label} | {100 * t / total:.1f}% | {t / iters / 1000:.2f} |")
    if top:
        print()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    main(sys.argv[1:])
