"""Run metrics: metrics.jsonl always; TensorBoard and wandb only when asked for."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import LeanGPTError
from .fileio import open_for_writing


class MetricsLogger:
    """Appends one JSON object per record to out_dir/metrics.jsonl (and mirrors to optional sinks)."""

    def __init__(self, out_dir: str | Path, tensorboard: bool = False, wandb_config: dict | None = None):
        self.path = Path(out_dir) / "metrics.jsonl"
        cut_short = _ends_mid_line(self.path)
        self._file = open_for_writing(self.path, "a")
        if cut_short:  # a kill mid-write left a fragment: the first new record starts its own line
            self._file.write("\n")
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


def _ends_mid_line(path: Path) -> bool:
    if path.is_symlink() or not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) != b"\n"


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


def read_metrics(path: str | Path, damaged: list | None = None) -> list[dict]:
    """The records of a metrics.jsonl. A line that is not a whole record (cut short by a kill,
    damaged on disk, not a JSON object, or a record whose numbers are not numbers) is skipped, and
    its line number appended to `damaged` when given."""
    records = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                record = None
            if isinstance(record, dict) and _well_formed(record):
                records.append(record)
            elif damaged is not None:
                damaged.append(number)
    return records


# the fields each kind of record must carry as numbers for a reader to use it
_NUMBERS = {"train": ("iter", "loss", "ms"), "eval": ("iter", "train_loss", "val_loss"),
            "memory": ("params", "optimizer_state_bytes", "optimizer_state_ratio", "kv_cache_bytes_per_token")}


def _well_formed(record: dict) -> bool:
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    return all(number(record.get(k)) for k in _NUMBERS.get(record.get("kind"), ()))


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
