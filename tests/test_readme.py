"""Every command the README and the docs pages show runs as written, in each page's order, at a
tiny size (each page in a scratch directory of its own).

Commands are read from the pages' indented code blocks (continuation lines joined, trailing
comments dropped). Training-shaped commands (train.py, torchrun, leangpt sweep) get a tiny model
and two iterations appended, sampling a short sample; everything else runs exactly as written.
Not run: `bash scripts/...` (the set-up commands: CI runs them), benchmarks (minutes each) and
commands with placeholders (CONFIG.py, SWEEP_DIR, HOST0).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import CORPUS

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDERS = ("CONFIG.py", "SWEEP_DIR", "HOST0", "YOUR", "path/to")
# a width that every head count the pages use divides (the tests' tiny model, 32 wide, would not)
TINY_TRAINING = ["--n_layer=1", "--n_embd=48", "--block_size=16", "--batch_size=2", "--max_iters=2",
                 "--lr_decay_iters=2", "--warmup_iters=1", "--eval_iters=1", "--eval_interval=1", "--compile=False"]
TINY_SAMPLE = ["--num_samples=1", "--max_new_tokens=20"]


# the pages whose commands are run; the generated tables in docs/ hold none
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")
                              if p.name not in ("memory_tables.md", "optim_field.md", "memory_stack.md", "stack_demo.md",
                                                "fsdp_memory.md"))]


def page_commands(page: str) -> list[str]:
    commands, current, in_block, previous_blank = [], None, False, True
    for line in (ROOT / page).read_text().splitlines():
        if line.startswith("    ") and (in_block or previous_blank):
            in_block = True
            text = line.strip()
            body = text[:-1].strip() if text.endswith("\\") else text
            current = body if current is None else f"{current} {body}"
            if not text.endswith("\\"):
                commands.append(current)
                current = None
        else:
            in_block = in_block and not line.strip()
        previous_blank = not line.strip()
    return [c for c in commands if re.match(r"(python|leangpt|torchrun|bash|source)\b", c)]


def to_argv(command: str) -> list[str] | None:
    """The command as an argv list for this test's python, or None where it is not run here."""
    words = shlex.split(command, comments=True)
    if words[0] in ("bash", "source") or any(p in command for p in PLACEHOLDERS):
        return None
    if words[0] == "python" and words[1].startswith("bench/"):
        return None
    if words[0] == "python":
        argv = [sys.executable, *words[1:]]
    elif words[0] == "leangpt":
        argv = [sys.executable, "-m", "leangpt", *words[1:]]
    else:  # torchrun
        argv = [sys.executable, "-m", "torch.distributed.run", *words[1:]]
    if "train.py" in words or words[:2] == ["leangpt", "sweep"]:
        argv += TINY_TRAINING
    if "sample.py" in words or words[:2] == ["leangpt", "sample"]:
        argv += TINY_SAMPLE
    return argv


def test_the_pages_show_their_commands():
    runnable = {page: [c for c in page_commands(page) if to_argv(c)] for page in PAGES}
    assert len(runnable["README.md"]) >= 7  # the course commands
    assert sum(map(len, runnable.values())) >= 25  # the docs pages' examples were found


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_command_of_a_page_runs(page, tmp_path):
    for name in ("train.py", "sample.py", "config", "data/shakespeare_char/prepare.py"):
        source, target = ROOT / name, tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    (tmp_path / "input.txt").write_text(CORPUS * 40)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    failures = []
    for command in page_commands(page):
        argv = to_argv(command)
        if argv is None:
            continue
        out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            failures.append(f"{command}\n  exit {out.returncode}: {(out.stderr or out.stdout).strip()[-600:]}")
    assert not failures, "\n\n".join(failures)
