"""Run metrics: metrics.jsonl always; TensorBoard and wandb only when asked for."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import LeanGPTError


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


class MetricsFollower:
    """The records another process appends to a metrics.jsonl, as they arrive (from the file's end
    when it starts: a resumed run's earlier records are not news). A line is read once complete."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offset = self.path.stat().st_size if self.path.is_file() else 0
        self.pending = b""

    def new_records(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, self.pending = (self.pending + data).split(b"\n")
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # not a record (a line cut short by a kill)
            if isinstance(record, dict):
                records.append(record)
        return records


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


class RunRecords:
    """A run's results, written once: every record goes to metrics.jsonl (where this process
    writes files) and the latest of each kind is kept, so that what the trainer returns, what the
    sweep follows and what the report reads are the same records."""

    def __init__(self, logger: MetricsLogger | None):
        self.logger = logger
        self.latest: dict[str, dict] = {}

    def record(self, kind: str, **fields) -> None:
        record = {"kind": kind, **fields}
        self.latest[kind] = record
        if self.logger is not None:
            self.logger.log(record)

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()

    def summary(self) -> dict:
        """The run's final numbers, from its records: status and counters of the end record, the
        last evaluation's losses, the optimizer-state and step-memory measurements."""
        end, last_eval = self.latest.get("end", {}), self.latest.get("eval", {})
        memory = self.latest.get("memory", {})
        out = {k: v for k, v in end.items() if k != "kind" and v is not None}
        out.update(train_loss=last_eval.get("train_loss"), val_loss=last_eval.get("val_loss"))
        out.update({k: memory[k] for k in ("params", "optimizer_state_bytes", "adamw_state_bytes",
                                           "kv_cache_bytes_per_token") if k in memory})
        if "step_memory" in self.latest:
            out["step_memory"] = {k: v for k, v in self.latest["step_memory"].items() if k not in ("kind", "iter")}
        return out
