"""Atomic file writes: a temporary file in the same directory, then os.replace.

An interrupted write never leaves a half-written file where a good one was. Nothing here writes
through a symlink: os.replace replaces a link, and `open_for_writing` replaces one at its path
with a plain file, so a link planted in an out_dir cannot make leangpt overwrite its target.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, IO

from .errors import LeanGPTError


TEMPORARY_PREFIX = ".leangpt-"  # only such files are leangpt's to remove when a killed write left them


def open_for_writing(path: str | Path, mode: str = "w"):
    """open(path, mode) in text, but a symlink at `path` is replaced by a plain file (its target
    is left alone) instead of being followed. Modes: "w", "a", "a+"."""
    if mode not in ("w", "a", "a+"):
        raise ValueError(f"open_for_writing mode {mode!r}")
    path = Path(path)
    if path.is_symlink():
        path.unlink()
    flags = os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (os.O_RDWR if "+" in mode else os.O_WRONLY)
    flags |= os.O_APPEND if "a" in mode else os.O_TRUNC
    return os.fdopen(os.open(path, flags, 0o666), mode, encoding="utf-8")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_temporary(path: Path, write: Callable[[IO[bytes]], None]) -> str:
    """A complete, synced temporary file beside `path`, with the mode a plain open() would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMPORARY_PREFIX}{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: others could not read a checkpoint
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    tmp = _write_temporary(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@contextmanager
def replaced_together():
    """`write(path, writer)` inside the block writes a temporary beside each path; they replace
    their paths together when the block ends, in the order written (what must be last, last). An
    error in the block removes them all: every old version stays in place."""
    written: dict[Path, str] = {}

    def write(path: str | Path, writer: Callable[[IO[bytes]], None]) -> None:
        written[Path(path)] = _write_temporary(Path(path), writer)

    try:
        yield write
    except BaseException:
        for tmp in written.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    for path, tmp in written.items():
        os.replace(tmp, path)


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    atomic_write(path, lambda f: f.write(payload))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode("utf-8"))


@contextmanager
def directory_lock(directory: str | Path, key: str = "out_dir"):
    """Hold an exclusive lock on `directory` (its .lock file names the holder's pid) while the
    block runs: a second trainer or sweep on the same directory gets one clear error instead of
    mixing its files with the first's. Temporary files that killed writes left are removed."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks, run unlocked
        yield
        return
    directory = Path(directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    handle = open_for_writing(directory / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise LeanGPTError(f"{key}={str(directory)!r} is in use by process {holder}; wait for it to finish "
                           f"or choose another {key}") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        for stale in directory.glob(f"{TEMPORARY_PREFIX}*.tmp"):  # from writes killed mid-way; we hold the lock now
            stale.unlink(missing_ok=True)
        yield
    finally:
        # a directory this lock made, where the run wrote nothing (it failed before its first
        # file), goes again: a mistyped command leaves no stray out_dir holding only .lock
        if created and [p.name for p in directory.iterdir()] == [".lock"]:
            (directory / ".lock").unlink()
            directory.rmdir()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
