"""Throughput and peak memory of `leangpt prepare` on a corpus of at least 100 MB built from the
local tinyshakespeare (the text repeated), one tokenizer after another, each in a process of its own.

    python bench/prepare_throughput.py [--input=path/to/input.txt] [--mb=100] [--tokenizers=char,bpe]

Prints a markdown table: MB of input, wall seconds, MB/s, the process's max RSS. The gpt2
tokenizer needs tiktoken's encoding file (downloaded on first use): offline it is left out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> None:
    options = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    source = options.get("input") or os.environ.get("LEANGPT_TINYSHAKESPEARE") or "../shared/data/tinyshakespeare/input.txt"
    if not Path(source).is_file():
        sys.exit(f"error: {source} not found; give the text with --input=FILE")
    megabytes = float(options.get("mb", 100))
    tokenizers = options.get("tokenizers", "char,bpe").split(",")
    text = Path(source).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        with open(corpus, "w", encoding="utf-8") as f:
            while f.tell() < megabytes * 1e6:
                f.write(text)
        size = corpus.stat().st_size
        rows = []
        for tokenizer in tokenizers:
            cmd = [sys.executable, "-m", "leangpt", "prepare", f"--input={corpus}", f"--name={tokenizer}",
                   f"--data_dir={tmp}/data", f"--tokenizer={tokenizer}"]
            started = time.perf_counter()
            child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            output = child.stdout.read()
            _, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - started
            if status != 0:
                print(output, file=sys.stderr)
                rows.append(f"| {tokenizer} | {size / 1e6:.1f} | failed: {output.strip().splitlines()[-1]} | | |")
                continue
            print(output.strip().splitlines()[-1], flush=True)
            rows.append(f"| {tokenizer} | {size / 1e6:.1f} | {seconds:.1f} | {size / 1e6 / seconds:.1f} | "
                        f"{usage.ru_maxrss / 1024:.0f} MiB |")
    print("\n| tokenizer | input (MB) | wall (s) | MB/s | max RSS |\n|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    main(sys.argv[1:])
