"""The run directory and its manifest: config, versions, seeds, input hashes and the status of every stage.
A stage counts as done only when the manifest says so and its config fingerprint still matches, so a
crash at any point resumes cleanly and a changed setting reruns what depends on it."""

from __future__ import annotations

import contextlib
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import distributed
from ..errors import StageError
from ..io import read_json, write_json

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


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


def _crash_hook(stage: str) -> None:
    """Fault injection for the crash-safety tests: with SAFER_KILL_IN_STAGE=<stage> and SAFER_KILL_AFTER=<s>,
    the process sends itself SIGKILL that many seconds after entering that stage (a real, uncatchable kill)."""
    if os.environ.get("SAFER_KILL_IN_STAGE") != stage:
        return
    timer = threading.Timer(float(os.environ.get("SAFER_KILL_AFTER", "0")),
                            lambda: os.kill(os.getpid(), signal.SIGKILL))
    timer.daemon = True
    timer.start()


@dataclass
class StageHandle:
    name: str
    info: dict = field(default_factory=dict)


class RunDir:
    """A run directory. All paths a stage writes come from `path()`, which refuses to leave the run."""

    def __init__(self, root: str | os.PathLike, config: dict | None = None):
        self.root = Path(root)
        self.config = config or {}
        self.manifest_path = self.root / MANIFEST
        self.completed_now: set[str] = set()
        if self.manifest_path.is_file():
            try:
                self.manifest = read_json(self.manifest_path)
            except json.JSONDecodeError as err:
                raise StageError(f"{self.manifest_path}: unreadable manifest ({err.msg})") from None
        else:
            self.manifest = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "stages": {}, "inputs": {}}

    # -- paths -----------------------------------------------------------------------------------------
    def path(self, *parts: str | os.PathLike) -> Path:
        p = self.root.joinpath(*map(str, parts))
        root = self.root.resolve()
        resolved = p.resolve()
        if resolved != root and root not in resolved.parents:
            raise StageError(f"{p}: refusing to write outside the run directory {self.root}")
        return p

    # -- manifest --------------------------------------------------------------------------------------
    def save(self) -> None:
        if not distributed.is_main():
            return
        self.manifest["config"] = self.config
        self.manifest["versions"] = package_versions()
        self.manifest["command"] = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        write_json(self.manifest_path, self.manifest)

    def record_input(self, name: str, sha256: str) -> None:
        self.manifest.setdefault("inputs", {})[name] = sha256

    def status(self, name: str) -> dict:
        return self.manifest["stages"].get(name, {})

    def done(self, name: str, depends: Any = None) -> bool:
        st = self.status(name)
        if st.get("status") != "done":
            return False
        return depends is None or st.get("fingerprint") == fingerprint(depends)

    def info(self, name: str) -> dict:
        return self.status(name).get("info", {})

    def reset(self, prefix: str = "") -> None:
        """Forget finished stages (all, or those whose name starts with prefix)."""
        for name in list(self.manifest["stages"]):
            if name.startswith(prefix):
                del self.manifest["stages"][name]

    @contextlib.contextmanager
    def stage(self, name: str, depends: Any = None) -> Iterator[StageHandle]:
        """Run a stage: marked running, then done (with seconds and info) or failed (with the error)."""
        handle = StageHandle(name)
        started = time.time()
        _crash_hook(name)
        self.manifest["stages"][name] = {"status": "running", "started": started}
        self.save()
        log.info("stage %s: started", name)
        try:
            yield handle
        except BaseException as err:
            self.manifest["stages"][name] = {
                "status": "failed", "started": started, "seconds": round(time.time() - started, 3),
                "error": f"{type(err).__name__}: {err}".splitlines()[0][:500],
            }
            self.save()
            raise
        entry = {
            "status": "done",
            "started": started,
            "seconds": round(time.time() - started, 3),
            "info": handle.info,
        }
        if depends is not None:
            entry["fingerprint"] = fingerprint(depends)
        self.manifest["stages"][name] = entry
        self.completed_now.add(name)
        self.save()
        distributed.barrier()  # the stage's artifacts are on disk before any rank goes on
        log.info("stage %s: done in %.1f s", name, entry["seconds"])

    def stage_seconds(self) -> dict[str, float]:
        return {n: s.get("seconds", 0.0) for n, s in self.manifest["stages"].items() if s.get("status") == "done"}

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
