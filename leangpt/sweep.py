"""Sweeps: every combination of a grid trained as its own run, then one report.

    leangpt sweep CONFIG.py [--grid=KEY=V1,V2,...]... [--key=value ...] [--sweep_dir=DIR]

A config file may hold, besides training keys, `grid = {"key": [values]}` (crossed) and
`variants = [{"key": value, ...}, ...]` (runs that set several keys together, such as an
optimizer with its tuned learning rate); the runs are variants x grid. Each run trains in its
own process, so that a crash ends one run, not the sweep, from its settings as data
(runs/NAME/run_config.json); runs/NAME/run_config.py holds the same settings for people to read
and rerun by hand, and the sweep never executes it. Re-running the same command skips finished
runs and resumes every other run that has a checkpoint, however it ended (an interruption, the
OOM killer), refusing one whose settings changed, and draws the sample of a run trained before
its sample was. SIGTERM or Ctrl-C to the sweep is passed on to the running trainer, which
checkpoints before the sweep stops; at any other moment (drawing a sample, between runs) the sweep
stops there. Either way it exits with status 130 and prints the command that finishes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from .checks import setting_notes
from .config import SampleConfig, TrainConfig, parse_grid_args
from .errors import ConfigError, LeanGPTError
from .fileio import atomic_write_bytes, atomic_write_json, directory_lock, open_for_writing
from .formatting import format_duration
from .metrics import MetricsFollower


@dataclasses.dataclass
class Run:
    name: str
    overrides: dict  # what differs from the base config
    config: TrainConfig

    @property
    def dir(self) -> Path:
        return Path(self.config.out_dir)


def parse_sweep_args(argv: list[str]) -> tuple[TrainConfig, list[dict], Path]:
    """Base config, the list of per-run overrides, and the sweep directory; all validated."""
    base, runs, sweep_dir = parse_grid_args(argv, TrainConfig)
    if not any(runs):
        raise ConfigError("the sweep has no grid: give --grid=KEY=V1,V2 or grid/variants in the config file")
    owned = sorted({k for r in runs for k in r} & SWEEP_OWNED)
    if owned:
        raise ConfigError(f"{owned[0]} is set by the sweep for each run; it cannot be swept")
    return base, runs, sweep_dir


SWEEP_OWNED = {"out_dir", "init_from"}  # each run's directory, and scratch-or-resume, are the sweep's


def run_name(overrides: dict) -> str:
    parts = [f"{k}={v}" for k, v in overrides.items()]
    name = re.sub(r"[^A-Za-z0-9_.=,+-]", "_", ",".join(parts)) or "base"
    if len(name) > 100:  # file names stop at 255 bytes: keep a readable head and a hash of the rest
        name = f"{name[:80]}-{hashlib.sha1(name.encode()).hexdigest()[:12]}"
    return name


def plan(base: TrainConfig, overrides: list[dict], sweep_dir: Path) -> list[Run]:
    runs = []
    for o in overrides:
        name = run_name(o)
        try:
            config = dataclasses.replace(base, **o, out_dir=str(sweep_dir / "runs" / name), init_from="scratch")
            config.validate()
        except ConfigError as exc:
            raise ConfigError(f"run {name}: {exc}") from None
        runs.append(Run(name, o, config))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError("two runs of the sweep have the same settings; remove the duplicate values")
    return runs


def _literal(value) -> str:
    """Python source that evaluates back to `value` (repr(inf) is `inf`, a NameError)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    return repr(value)


def write_run_config(config: TrainConfig, directory: Path) -> Path:
    """The run's settings as data (run_config.json, what the sweep's trainer reads) and as a
    config file for people (run_config.py). Returns the JSON file's path."""
    settings = dataclasses.asdict(config)
    lines = ["# written by leangpt sweep (which reads run_config.json, never this file); rerun this one run "
             f"with: python train.py {directory / 'run_config.py'}"]
    lines += [f"{k} = {_literal(v)}" for k, v in settings.items()]
    atomic_write_bytes(directory / "run_config.py", ("\n".join(lines) + "\n").encode("utf-8"))
    atomic_write_json(directory / "run_config.json", settings)
    return directory / "run_config.json"


def _trained_with_other_settings(run: Run) -> list[str]:
    """Keys whose value in the run's own settings (as it trained them) differs from what the sweep
    asks now; the sweep's paths (out_dir: a copied or moved sweep directory) are not settings."""
    try:
        trained = json.loads((run.dir / "run_config.json").read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(trained, dict):
        return []
    asked = dataclasses.asdict(run.config)
    return [f"{k} {trained[k]!r} -> {asked[k]!r}" for k in asked
            if k in trained and k not in SWEEP_OWNED and trained[k] != asked[k]]


def read_status(run: Run) -> dict:
    try:
        return json.loads((run.dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


class Progress:
    """One updating line on a terminal; plain lines otherwise (logs, CI)."""

    def __init__(self, total_runs: int, stream=None):
        self.total, self.stream = total_runs, stream or sys.stdout
        self.tty = self.stream.isatty()
        self.started = time.time()
        self.iters_done = 0  # iterations trained in this sweep invocation, for the ETA
        self.iters_left = 0
        # the clock starts at the first iteration seen: a process's start-up and first evaluation
        # would otherwise count as the cost of one iteration (an ETA of days after iteration 1)
        self.clock: tuple[float, int] | None = None  # (time, iters_done) when the clock started

    def line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    MIN_ITERS_FOR_ETA = 20

    def advance(self, iters: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if self.clock is None:
            self.clock = (now, self.iters_done + iters)
        self.iters_done += iters

    def eta(self, it: int, now: float | None = None) -> str:
        """Time left for the sweep, from this invocation's seconds per iteration since its first
        iteration (later runs' start-ups and evaluations included, as they will recur)."""
        if self.clock is None or self.iters_done - self.clock[1] < self.MIN_ITERS_FOR_ETA:
            return "?"
        now = time.time() if now is None else now
        rate = (now - self.clock[0]) / (self.iters_done - self.clock[1])
        return format_duration(rate * max(0, self.iters_left - it))

    def update(self, index: int, name: str, it: int, max_iters: int) -> None:
        if not self.tty:
            return
        self.stream.write(f"\r\033[K[{index}/{self.total}] {name[:48]} iter {it}/{max_iters} | sweep ETA {self.eta(it)}")
        self.stream.flush()


BETWEEN_RUNS = "between runs ({done} of {total} behind it)"  # where a stop can come: see stopping_on_signals


class SweepInterrupted(KeyboardInterrupt):
    """A stop asked of the sweep (SIGINT, SIGTERM), whatever it was doing when it came."""


def execute(run: Run, index: int, progress: Progress, stop: dict) -> str:
    """Train one run in a child process, then draw its sample; returns its final status.
    run.json says `finished` only once both are done: `trained` is a run whose training ended
    and whose sample is not drawn yet (a rerun draws it without training)."""
    run.dir.mkdir(parents=True, exist_ok=True)
    run_started = time.time()
    if not is_trained(run):
        status = _train(run, index, progress, stop)
        if status != "trained":
            return status
    stop.update(phase="while run {run} drew its sample", run=run, index=index)
    try:
        write_sample(run)
        final = {"status": "finished"}
    except LeanGPTError as exc:  # one line, and the sweep goes on; a rerun tries again
        progress.line(f"    no sample for {run.name}: {exc}")
        final = {"status": "trained", "error": f"no sample: {exc}"}
    atomic_write_json(run.dir / "run.json", {**final, "overrides": run.overrides})
    stop.update(phase=BETWEEN_RUNS, run=None, index=index)
    progress.line(f"[{index}/{progress.total}] {run.name}: {final['status']} in {format_duration(time.time() - run_started)}"
                  + (f" ({final['error']})" if "error" in final else ""))
    return final["status"]


def _train(run: Run, index: int, progress: Progress, stop: dict) -> str:
    resume = can_resume(run)
    if not resume:  # a fresh start: drop any half-written metrics of an earlier attempt
        (run.dir / "metrics.jsonl").unlink(missing_ok=True)
    stop.update(phase="while run {run} trained", run=run, index=index)
    config_path = write_run_config(run.config, run.dir)
    atomic_write_json(run.dir / "run.json", {"status": "running", "overrides": run.overrides, "started": time.time()})
    cmd = [sys.executable, "-m", "leangpt", "train", str(config_path)] + (["--init_from=resume"] if resume else [])
    progress.line(f"[{index}/{progress.total}] {run.name}: {'resuming' if resume else 'training'}")
    for note in setting_notes(run.config):
        progress.line(f"    {note}")
    run_started = time.time()
    code = _follow(run, cmd, index, progress, stop)
    progress.iters_left -= run.config.max_iters
    # a trainer that a forwarded signal ended any other way (it had left its loop) stopped all the same
    if code == 130 or (stop["requested"] and code in (-signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGTERM)):
        final = {"status": "interrupted"}
    elif code == 0:
        final = {"status": "trained"}
    else:
        lines = (run.dir / "stderr.log").read_text().strip().splitlines()
        final = {"status": "failed", "error": lines[-1] if lines else f"exit status {code}"}
    atomic_write_json(run.dir / "run.json", {**final, "overrides": run.overrides})
    stop["child"] = None
    if final["status"] != "trained":
        progress.line(f"[{index}/{progress.total}] {run.name}: {final['status']} in "
                      f"{format_duration(time.time() - run_started)}" + (f" ({final['error']})" if "error" in final else ""))
    if stop["requested"]:  # the signal came while it trained: the sweep stops after it
        if final["status"] == "trained":
            stop["phase"] = "after run {run} trained, before its sample was drawn"
        raise SweepInterrupted
    return final["status"]


def is_trained(run: Run) -> bool:
    """Its training ended (a checkpoint at max_iters), its sample is still to draw. A run
    recorded as finished without its sample (by an older leangpt) counts as trained too."""
    status = read_status(run).get("status")
    return (run.dir / "ckpt.pt").is_file() and (
        status == "trained" or status == "finished" and not (run.dir / "sample.txt").is_file())


def is_finished(run: Run) -> bool:
    return read_status(run).get("status") == "finished" and (run.dir / "sample.txt").is_file()


def can_resume(run: Run) -> bool:
    """A run that did not finish resumes from its checkpoint, whatever ended it."""
    return (run.dir / "ckpt.pt").is_file() and not is_finished(run)


POLL_SECONDS = 0.2


@contextlib.contextmanager
def stopping_on_signals():
    """SIGINT and SIGTERM to the sweep, for all of it. While a trainer runs, each goes to the
    trainer, once: it runs in its own process group (a terminal's Ctrl-C would otherwise reach it
    twice, and a second signal stops it without a checkpoint), checkpoints and stops, and the
    sweep stops after it. At any other moment (a sample, between runs, the report) the sweep stops
    there (SweepInterrupted). Yields the state: requested, the trainer, and where the sweep is."""
    stop = {"requested": False, "child": None, "phase": "while starting", "run": None, "index": 0}

    def handler(signum, frame):
        stop["requested"] = True
        child = stop["child"]
        if child is None:
            if stop.get("launching"):
                return
            raise SweepInterrupted
        if child.poll() is None:
            child.send_signal(signum)

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield stop
        return
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _follow(run: Run, cmd: list[str], index: int, progress: Progress, stop: dict) -> int:
    """Run the trainer with its console output in the run's log files, following the records it
    appends to metrics.jsonl for the progress line; returns its exit status."""
    follower = MetricsFollower(run.dir / "metrics.jsonl")
    with open_for_writing(run.dir / "stdout.log") as out, open_for_writing(run.dir / "stderr.log") as err:
        stop["launching"] = True  # a signal now is only noted: the trainer it must reach is being started
        try:
            child = stop["child"] = subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True,
                                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            stop["launching"] = False
        if stop["requested"]:
            child.send_signal(signal.SIGTERM)
        return _poll(child, follower, run, index, progress)


def _poll(child, follower: MetricsFollower, run: Run, index: int, progress: Progress) -> int:
    run_started, last_it = time.time(), None
    while True:
        code = child.poll()
        for record in follower.new_records():
            if record.get("kind") == "train":
                it = record["iter"] + 1
                progress.advance(it - (it - 1 if last_it is None else last_it))
                last_it = it
                progress.update(index, run.name, it, run.config.max_iters)
            elif record.get("kind") == "eval" and not progress.tty:
                progress.line(f"    step {record['iter']}: train loss {record['train_loss']:.4f}, val loss "
                              f"{record['val_loss']:.4f}  [run {format_duration(time.time() - run_started)}, "
                              f"sweep ETA {progress.eta(last_it or 0)}]")
        if code is not None:
            return code
        time.sleep(POLL_SECONDS)


def write_sample(run: Run, max_new_tokens: int = 300) -> None:
    """One sample per run from a fixed seed and prompt, so runs compare like for like."""
    from .sample import sample
    config = SampleConfig(out_dir=str(run.dir), num_samples=1, max_new_tokens=max_new_tokens, seed=1337,
                          start="\n", device="cpu" if run.config.device == "auto" else run.config.device,
                          data_dir=run.config.data_dir)
    text = sample(config, out=lambda _: None, info=lambda _: None)[0]
    with open_for_writing(run.dir / "sample.txt") as f:
        f.write(text)


def sweep(argv: list[str]) -> Path:
    base, overrides, sweep_dir = parse_sweep_args(argv)
    runs = plan(base, overrides, sweep_dir)
    with directory_lock(sweep_dir, key="sweep_dir"):
        return _run_sweep(argv, runs, base, sweep_dir)


def finish_command(argv: list[str]) -> str:
    """The command that finishes a sweep: the one that started it (finished runs are skipped)."""
    return "leangpt sweep " + shlex.join(argv)


def _run_sweep(argv: list[str], runs: list[Run], base: TrainConfig, sweep_dir: Path) -> Path:
    atomic_write_json(sweep_dir / "sweep.json", {"argv": argv, "base": dataclasses.asdict(base),
                                                 "runs": [{"name": r.name, "overrides": r.overrides} for r in runs]})
    progress = Progress(len(runs))
    with stopping_on_signals() as stop:
        try:
            return _run_all(runs, sweep_dir, progress, stop)
        except SweepInterrupted:
            run = stop["run"]
            where = stop["phase"].format(run=f"{stop['index']}/{len(runs)} ({run.name})" if run else "",
                                         done=stop["index"], total=len(runs))
            if run is not None and read_status(run).get("status") == "running":  # stopped before its trainer started
                atomic_write_json(run.dir / "run.json", {"status": "interrupted", "overrides": run.overrides})
            finished = sum(is_finished(r) for r in runs)
            progress.line(f"sweep interrupted {where}; {finished} of {len(runs)} runs finished. Resume it with: "
                          f"{finish_command(argv)}  (finished runs are skipped, the others resume from their "
                          f"checkpoints; leangpt report {shlex.quote(str(sweep_dir))} writes the report of the "
                          "runs so far)")
            raise


def _run_all(runs: list[Run], sweep_dir: Path, progress: Progress, stop: dict) -> Path:
    todo = [r for r in runs if not is_finished(r)]
    for r in runs:
        if r not in todo and (changed := _trained_with_other_settings(r)):
            raise ConfigError(f"run {r.name} finished with other settings ({', '.join(changed[:4])}); use another "
                              f"--sweep_dir, or delete {r.dir} to train it again")
        if r in todo and can_resume(r) and (changed := _trained_with_other_settings(r)):
            raise ConfigError(f"run {r.name} was interrupted with other settings ({', '.join(changed[:4])}); "
                              f"rerun it with those, use another --sweep_dir, or delete {r.dir} to train it again")
    progress.line(f"sweep {sweep_dir}: {len(runs)} runs, {len(runs) - len(todo)} already finished")
    progress.iters_left = sum(r.config.max_iters for r in todo if not is_trained(r))
    for index, run in enumerate(runs, start=1):
        stop.update(phase=BETWEEN_RUNS, run=None, index=index - 1)
        if run not in todo:
            continue
        status = execute(run, index, progress, stop)
        stop.update(phase=BETWEEN_RUNS, run=None, index=index)
        if status == "interrupted":  # the trainer stopped on its own (a signal sent to it alone)
            stop.update(phase="while run {run} trained", run=run, index=index)
            raise SweepInterrupted
    stop.update(phase="while writing the report", run=None)
    from .report import write_report
    write_report(sweep_dir)
    progress.line(f"report: {sweep_dir / 'report.md'} (took {format_duration(time.time() - progress.started)})")
    return sweep_dir


def sweep_main(argv: list[str]) -> int:
    """Exit status 1 when a run failed (after the other runs and the report), else 0."""
    from .report import collect
    try:
        rows = collect(sweep(argv))
    except SweepInterrupted:
        return 130
    failed = [r["name"] for r in rows if r["status"] in ("failed", "trained")]
    if failed:
        print(f"{len(failed)} of {len(rows)} runs failed or have no sample: {', '.join(failed)} (errors in report.md)",
              file=sys.stderr)
        return 1
    return 0


def report_main(argv: list[str]) -> int:
    if len(argv) != 1:
        raise LeanGPTError("usage: leangpt report SWEEP_DIR")
    from .report import write_report
    path = write_report(Path(argv[0]))
    print(f"report: {path}")
    return 0
