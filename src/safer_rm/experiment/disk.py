"""Each stage's disk use, recorded by the runner in the manifest beside its seconds and peak memory.

`disk_bytes`: the run directory's size when the stage ended; `disk_added_bytes`: what the stage added to it
(negative when it deleted more than it wrote); `peak_disk_bytes`: the largest size seen while it ran, read
every `INTERVAL_S` seconds by a thread (and at both ends), so files that live only during the stage (a reward
model's checkpoints) count. Sizes are the files' apparent sizes (what `du --apparent-size` says), the same
measure `--dry-run`'s estimates use (estimate.py). Under torchrun rank 0 measures, as for memory."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

INTERVAL_S = 1.0


def tree_bytes(root: str | os.PathLike) -> int:
    """Total apparent size of the regular files under `root` (0 when it does not exist); files that vanish
    while it walks (an atomic rename, a rotated checkpoint) are skipped."""
    total = 0
    stack = [Path(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
    return total


class _Watcher(threading.Thread):
    def __init__(self, root: Path, start_bytes: int):
        super().__init__(daemon=True, name="safer-disk-watcher")
        self.root, self.peak = root, start_bytes
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(INTERVAL_S):
            self.peak = max(self.peak, tree_bytes(self.root))


@contextlib.contextmanager
def disk_measured(root: str | os.PathLike) -> Iterator[dict]:
    """Measure the disk use of the run directory `root` over the enclosed work; the yielded dict holds
    `disk_bytes`, `disk_added_bytes` and `peak_disk_bytes` once the block ends."""
    root = Path(root)
    before = tree_bytes(root)
    frame: dict = {}
    watcher = _Watcher(root, before)
    try:
        watcher.start()
    except RuntimeError:  # no thread to spare: the ends alone
        watcher = None
    try:
        yield frame
    finally:
        if watcher is not None:
            watcher.stop.set()
            watcher.join()
        after = tree_bytes(root)
        peak = max(watcher.peak if watcher is not None else before, before, after)
        frame.update({"disk_bytes": after, "disk_added_bytes": after - before, "peak_disk_bytes": peak})
