"""Each stage's peak memory, recorded by the runner in the manifest beside its seconds.

CPU: the largest resident set size while the stage ran. The process's high-water mark (VmHWM) is never reset,
so that whoever watches the whole process (`/usr/bin/time`, a scheduler, a parent's `getrusage`) still sees
its true peak: when the mark rose during the stage, the stage set it and its peak is exact; otherwise a
sampler thread's largest reading of the current size (VmRSS, every 50 ms) is the stage's peak
(`peak_rss_scope: sampled`, a lower bound by what happened between two readings). GPU: torch's peak allocated
bytes since the stage started (only when torch is loaded and CUDA in use; the CUDA context and the allocator's
cache not included); an inner stage (the audit's sub-run) resets that counter, so each frame keeps the largest
value it has seen. Stages run on one thread. Under torchrun each rank measures itself and rank 0 writes the
manifest: the recorded peaks are rank 0's."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

INTERVAL_S = 0.05
_frames: list[dict] = []


def _status(field: str) -> int | None:
    """A size from /proc/self/status in bytes (Linux); None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class _Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True, name="safer-rss-sampler")
        self.peak = _status("VmRSS") or 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(INTERVAL_S):
            self.peak = max(self.peak, _status("VmRSS") or 0)


def _cuda():
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda
    return None


def _gpu_peak() -> int | None:
    cuda = _cuda()
    return int(cuda.max_memory_allocated()) if cuda is not None else None


@contextlib.contextmanager
def measured() -> Iterator[dict]:
    """Measure the peak memory of the enclosed work; the yielded dict holds `peak_rss_bytes`,
    `peak_rss_scope` (`stage`: exact, `sampled`: the sampler's largest reading) and, on CUDA,
    `peak_gpu_bytes` once the block ends."""
    if (
        _frames and (gpu := _gpu_peak()) is not None
    ):  # the enclosing stage's GPU peak so far, before the reset
        _frames[-1]["gpu"] = max(_frames[-1].get("gpu") or 0, gpu)
    frame: dict = {}
    _frames.append(frame)
    hwm_before = _status("VmHWM")
    sampler = None
    try:
        if hwm_before is not None:
            try:
                sampler = _Sampler()
                sampler.start()
            except RuntimeError:  # no thread to spare: the stage runs, its peak is what the mark says
                sampler = None
        cuda = _cuda()
        if cuda is not None:
            cuda.reset_peak_memory_stats()
        yield frame
    finally:
        _frames.pop()
        hwm_after = _status("VmHWM")
        result: dict = {"peak_rss_bytes": None, "peak_rss_scope": None}
        if sampler is not None:
            sampler.stop.set()
            sampler.join()
        if hwm_after is not None and hwm_before is not None:
            if hwm_after > hwm_before:
                result = {"peak_rss_bytes": hwm_after, "peak_rss_scope": "stage"}
            else:
                sampled = max(sampler.peak if sampler is not None else 0, _status("VmRSS") or 0)
                result = {"peak_rss_bytes": sampled, "peak_rss_scope": "sampled"}
        gpu = max(frame.pop("gpu", 0) or 0, _gpu_peak() or 0) if _cuda() is not None else None
        if gpu:
            result["peak_gpu_bytes"] = gpu
            if _frames:
                _frames[-1]["gpu"] = max(_frames[-1].get("gpu") or 0, gpu)
        frame.update(result)
