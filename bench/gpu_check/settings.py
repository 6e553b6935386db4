"""What the environment asks of the check (device, quick or tiny sizes, when it started), the repository's
places, and the SIGTERM that the outer `timeout` sends a part."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# what `scripts/gpu-check.sh --prepare` lays out for an offline machine (SAFER_GPU_CHECK_PREPARED moves it)
PREPARED = Path(os.environ.get("SAFER_GPU_CHECK_PREPARED") or ROOT / ".cache" / "gpu-check").resolve()


def flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    device: str  # cuda | cpu
    tiny: bool  # CPU test mode: tiny sizes everywhere
    quick: bool

    @property
    def mode(self) -> str:
        return "cpu-tiny" if self.tiny else ("gpu-quick" if self.quick else "gpu")


def settings() -> Settings:
    device = os.environ.get("SAFER_GPU_CHECK_DEVICE", "cuda").strip().lower() or "cuda"
    if device not in ("cuda", "cpu"):
        raise SystemExit(f"SAFER_GPU_CHECK_DEVICE must be cuda or cpu, got {device!r}")
    return Settings(device, device == "cpu", flag("SAFER_GPU_CHECK_QUICK"))


def started_at() -> float:
    try:
        return float(os.environ["SAFER_GPU_CHECK_START"])
    except (KeyError, ValueError):
        return time.time()


class Terminated(Exception):
    pass


def _on_term(signum, frame):  # the outer `timeout` sends SIGTERM: write what we have, then go
    raise Terminated(f"stopped by signal {signum}")


def stop_on_term() -> None:
    """Turn the outer `timeout`'s SIGTERM into Terminated, so that a part writes its numbers before it goes."""
    signal.signal(signal.SIGTERM, _on_term)
