"""Run metrics: metrics.jsonl always; TensorBoard and wandb only when asked for."""

from __future__ import annotations

import json
from pathlib import Path

from .config import LeanGPTError


class MetricsLogger:
    """Appends one JSON object per record to out_dir/metrics.jsonl (and mirrors to optional sinks)."""

    def __init__(self, out_dir: str | Path, tensorboard: bool = False, wandb_config: dict | None = None):
        self.path = Path(out_dir) / "metrics.jsonl"
        self._file = open(self.path, "a", encoding="utf-8")
        self._tb = self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise LeanGPTError("tensorboard=True needs the tensorboard package: pip install 'leangpt[tensorboard]'") from None
            self._tb = SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"))
        if wandb_config is not None:
            try:
                import wandb
            except ImportError:
                raise LeanGPTError("wandb_log=True needs the wandb package: pip install 'leangpt[wandb]'") from None
            self._wandb = wandb.init(project=wandb_config["project"], name=wandb_config["name"],
                                     config=wandb_config["config"])

    def log(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        step = record.get("iter")
        numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "iter"}
        if self._tb is not None:
            for key, value in numbers.items():
                self._tb.add_scalar(f"{record.get('kind', 'train')}/{key}", value, step)
        if self._wandb is not None:
            self._wandb.log({f"{record.get('kind', 'train')}/{k}": v for k, v in numbers.items()}, step=step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(path: str | Path) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill: skip it rather than lose the run
    return records
