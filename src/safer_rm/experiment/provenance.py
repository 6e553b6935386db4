"""Where a run's numbers came from: each stage records the source commit and the machine it ran on (a key into
the manifest's `machines`), so that a table generated from the run (`safer report --markdown`) says which code
and which machines produced it, also when several jobs on several machines shared the run directory."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from ..precision import cpu_has_bf16

PACKAGE = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """`<commit>` of the checkout this package runs from, `<commit>+dirty` with uncommitted changes to tracked
    files; None for an installed wheel or without git."""
    root = PACKAGE.parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def _host() -> tuple[tuple[str, object], ...]:
    """What does not change while the process runs (read once: /proc/cpuinfo is read per stage otherwise)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        ("cpu", cpu_model()),
        ("cores", cores),
        ("cpu_bf16", cpu_has_bf16()),
        ("os", platform.system()),
        ("python", platform.python_version()),
    )


def machine() -> dict:
    """The machine in a few fields: CPU model, cores this process may use, whether the CPU has bf16
    instructions, the GPU (when torch is loaded and sees one), OS and Python."""
    out = dict(_host())
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():  # in use: asking an idle CUDA would start it
        out["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
        out["gpus"] = torch.cuda.device_count()
    return out


def machine_key(described: dict) -> str:
    """A short stable name for a machine description (the manifest's `machines` are keyed by it)."""
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:10]
