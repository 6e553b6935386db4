"""The run directory and its manifest: config, versions, seeds, input hashes and the status of every stage.
A stage counts as done only when the manifest says so and its config fingerprint still matches, so a
crash at any point resumes cleanly and a changed setting reruns what depends on it."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import signal
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import distributed
from ..errors import StageError
from ..io import read_json, write_json
from .artifacts import LOCKS, MANIFEST

log = logging.getLogger(__name__)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("safer-rm", "torch", "transformers", "datasets", "accelerate", "eai-sparsify", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def crash_hook(stage: str) -> None:
    """Fault injection for the crash-safety tests: with SAFER_KILL_IN_STAGE=<stage> and SAFER_KILL_AFTER=<s>,
    the process sends itself SIGKILL that many seconds after entering that stage (a real, uncatchable kill)."""
    if os.environ.get("SAFER_KILL_IN_STAGE") != stage:
        return
    timer = threading.Timer(
        float(os.environ.get("SAFER_KILL_AFTER", "0")), lambda: os.kill(os.getpid(), signal.SIGKILL)
    )
    timer.daemon = True
    timer.start()


class RunDir:
    """A run directory. All paths a stage writes come from `path()`, which refuses to leave the run.

    Several processes may work in one run directory at once (different stages; see locks.py): each keeps
    the stage records it changed and `save()` merges them into the manifest on disk under a file lock, so
    processes finishing different stages never lose each other's records."""

    def __init__(self, root: str | os.PathLike, config: dict | None = None):
        self.root = Path(root)
        self.config = config or {}
        self.manifest_path = self.root / MANIFEST
        self._changed: dict[str, dict | None] = {}  # stage records this process wrote (None: forgotten)
        self._inputs: dict[str, str] = {}
        self._machines: dict[str, dict] = {}  # machines this process's stages ran on, by key (provenance.py)
        self.manifest = self._read() or {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "stages": {},
            "inputs": {},
        }

    def _read(self) -> dict | None:
        if not self.manifest_path.is_file():
            return None
        try:
            return read_json(self.manifest_path)
        except json.JSONDecodeError as err:
            raise StageError(f"{self.manifest_path}: unreadable manifest ({err.msg})") from None

    # -- paths -----------------------------------------------------------------------------------------
    def path(self, *parts: str | os.PathLike) -> Path:
        p = self.root.joinpath(*map(str, parts))
        root = self.root.resolve()
        resolved = p.resolve()
        if resolved != root and root not in resolved.parents:
            raise StageError(f"{p}: refusing to write outside the run directory {self.root}")
        return p

    def file(self, template: str, **fields) -> Path:
        """The path of one of the run's files (`artifacts.py`: `SCORES`, `RM_DIR` with variant and seed, ...)."""
        return self.path(template.format(**fields))

    # -- manifest --------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Take in what other processes recorded since (this process's unsaved changes stay on top)."""
        on_disk = self._read()
        if on_disk is not None:
            self.manifest = self._merged(on_disk)

    def _merged(self, on_disk: dict) -> dict:
        stages = dict(on_disk.get("stages", {}))
        for name, entry in self._changed.items():
            if entry is None:
                stages.pop(name, None)
            else:
                stages[name] = entry
        machines = {**on_disk.get("machines", {}), **self._machines}
        return {
            **on_disk,
            "stages": stages,
            "inputs": {**on_disk.get("inputs", {}), **self._inputs},
            "machines": machines,
        }

    def save(self) -> None:
        """Merge this process's stage records into the manifest on disk (serialised by a file lock)."""
        if not distributed.is_main():
            return
        (self.root / LOCKS).mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCKS / "manifest.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                merged = self._merged(self._read() or self.manifest)
                merged["config"] = self.config
                merged["versions"] = package_versions()
                merged["command"] = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
                write_json(self.manifest_path, merged)
                self.manifest = merged
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def record_machine(self, key: str, described: dict) -> None:
        self._machines[key] = described
        self.manifest.setdefault("machines", {})[key] = described

    def record_input(self, name: str, sha256: str) -> None:
        self._inputs[name] = sha256
        self.manifest.setdefault("inputs", {})[name] = sha256

    def record(self, name: str, entry: dict | None) -> None:
        """Set (or with None forget) a stage's record; written by the next `save()`."""
        self._changed[name] = entry
        if entry is None:
            self.manifest["stages"].pop(name, None)
        else:
            self.manifest["stages"][name] = entry

    def status(self, name: str) -> dict:
        return self.manifest["stages"].get(name, {})

    def done(self, name: str, fp: str | None = None) -> bool:
        """Finished, and (when `fp` is given) with that fingerprint."""
        st = self.status(name)
        return st.get("status") == "done" and (fp is None or st.get("fingerprint") == fp)

    def info(self, name: str) -> dict:
        return self.status(name).get("info", {})

    def finished(self) -> list[str]:
        return [n for n, s in self.manifest["stages"].items() if s.get("status") == "done"]

    def reset(self, prefix: str = "") -> None:
        """Forget finished stages (all, or those whose name starts with prefix)."""
        for name in list(self.manifest["stages"]):
            if name.startswith(prefix):
                self.record(name, None)

    def stage_seconds(self) -> dict[str, float]:
        return {
            n: s.get("seconds", 0.0) for n, s in self.manifest["stages"].items() if s.get("status") == "done"
        }

    def disk_usage(self) -> dict[str, int]:
        """Bytes per top-level folder of the run (caches can be cleared per stage)."""
        out = {}
        for child in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if child.is_dir():
                out[child.name] = sum(f.stat().st_size for f in child.rglob("*") if f.is_file())
        return out

    def clear(self, folder: str) -> None:
        target = self.path(folder)
        if target.is_dir():
            shutil.rmtree(target)
