"""One writer per stage: a stage being run by one process is locked, so that several processes (or the
array tasks of a cluster job) can work in one run directory at once, each on other stages.

A lock is a file `<run>/locks/<stage>.lock` held with `flock`: the kernel releases it when its holder
dies, however it dies, so a lock left by a killed process is stale by construction and is taken over (with a
warning that names the old holder). The file says who holds it (pid, host, command, since when), for the
one-line refusal a second process gets. Only rank 0 of a torchrun/accelerate job takes locks: the ranks of
one job are one holder. (`flock` on a network filesystem needs its lock manager: NFSv4 and Lustre have one.)
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import SaferError
from .artifacts import LOCKS

log = logging.getLogger(__name__)


class StageLocked(SaferError):
    """Another live process holds the stage (exit 2, one line)."""


def lock_file(root: Path, stage: str) -> Path:
    return root / LOCKS / (stage.replace("/", "__") + ".lock")


def holder_text(info: dict) -> str:
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('since', '?')}"


class StageLock:
    """Held for the time a stage runs; `with StageLock(root, name):`."""

    def __init__(self, root: str | os.PathLike, stage: str):
        self.path = lock_file(Path(root), stage)
        self.stage = stage
        self._fh = None

    def acquire(self) -> StageLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = read_holder(self.path)
            fh.close()
            raise StageLocked(
                f"stage {self.stage} is being run by {holder_text(info)} "
                f"({info.get('command', '?')}); wait for it or pick other stages"
            ) from None
        previous = read_holder(self.path)
        if previous:
            log.warning(
                "stage %s: took over the lock left by %s (that process is gone)",
                self.stage,
                holder_text(previous),
            )
        fh.seek(0)
        fh.truncate()
        fh.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
                }
            )
        )
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        """Empty the file, then let go (an empty lock file is a free one, not a stale one)."""
        if self._fh is None:
            return
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.flush()
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()
        self._fh = None

    def __enter__(self) -> StageLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def read_holder(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8").strip()
        return json.loads(text) if text else {}
    except (OSError, json.JSONDecodeError):
        return {}


def is_locked(root: str | os.PathLike, stage: str) -> dict | None:
    """The holder of a stage's lock when a live process holds it, else None (takes no lock for long)."""
    path = lock_file(Path(root), stage)
    if not path.is_file():
        return None
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_holder(path) or {"pid": "?"}
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None
