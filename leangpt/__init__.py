"""leangpt: a small, readable GPT trainer for studying memory-reduced training."""

from .config import SampleConfig, TrainConfig

from .errors import ConfigError, LeanGPTError
from .model import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig", "TrainConfig", "SampleConfig", "ConfigError", "LeanGPTError"]
__version__ = "0.1.0"
