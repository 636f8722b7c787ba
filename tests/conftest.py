import dataclasses
import os
from pathlib import Path

import pytest
import torch

from leangpt.config import TrainConfig
from leangpt.device import SLOW_BF16_OVERRIDE

# the tests run bfloat16 on CPU for its numbers, not its speed: allow it on CPUs without bf16
# instructions too (test_device.py checks the refusal itself); subprocesses inherit this
os.environ[SLOW_BF16_OVERRIDE] = "1"
from leangpt.data import prepare_dataset

CORPUS = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "All:\nResolved. resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n\n"
)


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """A prepared character dataset under tmp_path/data/tiny (a few KB of repeated text)."""
    data_dir = tmp_path / "data"
    prepare_dataset(CORPUS * 40, data_dir / "tiny")
    return data_dir


def tiny_config(data_dir: Path, out_dir: Path, **overrides) -> TrainConfig:
    config = TrainConfig(
        out_dir=str(out_dir), data_dir=str(data_dir), dataset="tiny", device="cpu", compile=False,
        n_layer=2, n_head=4, n_embd=32, block_size=16, batch_size=4, gradient_accumulation_steps=1,
        max_iters=20, lr_decay_iters=20, warmup_iters=2, learning_rate=3e-3, min_lr=3e-4,
        eval_interval=10, eval_iters=2, log_interval=1, dropout=0.0, seed=7,
    )
    config = dataclasses.replace(config, **overrides)
    config.validate()
    return config


@pytest.fixture
def shakespeare_path() -> Path:
    path = os.environ.get("LEANGPT_TINYSHAKESPEARE")
    if not path or not Path(path).is_file():
        pytest.skip("LEANGPT_TINYSHAKESPEARE is not set to the tinyshakespeare input.txt (.ci/run sets it)")
    return Path(path)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
