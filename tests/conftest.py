"""The tests' fixtures; what they share besides fixtures is in helpers.py."""

import os
from pathlib import Path

import pytest
import torch

from leangpt.device import SLOW_BF16_OVERRIDE

# the tests run bfloat16 on CPU for its numbers, not its speed: allow it on CPUs without bf16
# instructions too (test_device.py checks the refusal itself); subprocesses inherit this
os.environ[SLOW_BF16_OVERRIDE] = "1"

from leangpt.data import prepare_dataset  # noqa: E402
from tests.helpers import CORPUS  # noqa: E402


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """A prepared character dataset under tmp_path/data/tiny (a few KB of repeated text)."""
    data_dir = tmp_path / "data"
    prepare_dataset(CORPUS * 40, data_dir / "tiny")
    return data_dir


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
