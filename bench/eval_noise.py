"""How noisy is a val loss from `eval_iters` random batches? Evaluate one checkpoint many times.

    python bench/eval_noise.py OUT_DIR [--eval_iters=200] [--repeats=10] [--data_dir=data]

Each repeat draws `eval_iters` fresh batches (as estimate_loss does) from its own seed; the spread
of the repeats is the noise of a single reported val loss. Prints mean, standard deviation and
the range.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leangpt import checkpoint  # noqa: E402
from leangpt.data import BatchSampler, dataset_paths, load_dataset_meta  # noqa: E402
from leangpt.model import GPT, GPTConfig  # noqa: E402


def main(argv):
    if not argv or argv[0].startswith("--"):
        sys.exit(__doc__)
    opts = dict(a[2:].split("=", 1) for a in argv[1:])
    eval_iters, repeats = int(opts.get("eval_iters", 200)), int(opts.get("repeats", 10))
    ckpt = checkpoint.load(Path(argv[0]) / "ckpt.pt")
    config = ckpt["config"]
    model = GPT(GPTConfig(**ckpt["leangpt_model_args"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    data_dir = opts.get("data_dir", config["data_dir"])
    paths = dataset_paths(data_dir, config["dataset"])
    bin_path, dtype = paths["val"], load_dataset_meta(paths).get("dtype", "uint16")
    losses = []
    with torch.no_grad():
        for seed in range(repeats):
            sampler = BatchSampler(bin_path, config["block_size"], config["batch_size"], seed=1000 + seed, dtype=dtype)
            losses.append(sum(model(*sampler.next_batch())[1].item() for _ in range(eval_iters)) / eval_iters)
    print(f"{argv[0]}: val loss over {eval_iters} batches, {repeats} repeats: mean {statistics.mean(losses):.4f}, "
          f"std {statistics.stdev(losses):.4f}, range {min(losses):.4f}..{max(losses):.4f}")


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:  # every script answers --help without running
        print(__doc__)
        sys.exit(0)
    main(sys.argv[1:])
