"""Multi-process runs through `torchrun` / `accelerate launch` (no process management of our own).

When the launcher sets WORLD_SIZE > 1, the process group is initialised (NCCL on CUDA, gloo on CPU) before
any stage runs; transformers.Trainer and accelerate then find and use it for reward-model training (DDP,
DeepSpeed or FSDP from the config). The other stages shard their work by rank and merge deterministically:
scoring and extraction split the same length-sorted batches a single process would use (so every batch, and
so every number, is the same as in one process), SAE training averages gradients over ranks, and only rank 0
writes the manifest and the shared artifacts.
"""

from __future__ import annotations

import atexit
import datetime
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
T = TypeVar("T")


def init() -> None:
    """Join the process group the launcher describes (a no-op for a single process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=60))
    # leave the group before the interpreter exits: a process that exits with the backend's threads still
    # running aborts ("terminate called without an active exception"), and the launcher then fails the run
    atexit.register(_leave)
    log.info("rank %d of %d (%s)", rank(), world(), backend)


def _dist():
    """torch.distributed where it was imported (a process group needs it; a process that never imported it,
    like `safer --help` or `--dry-run`, is a single process and need not import torch to know)."""
    return sys.modules.get("torch.distributed")


def _leave() -> None:
    dist = _dist()
    if dist is not None and dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    dist = _dist()
    return dist is not None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return _dist().get_rank() if active() else 0


def world() -> int:
    return _dist().get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        _dist().barrier()


def broadcast(value: T) -> T:
    """Rank 0's value on every rank."""
    if not active():
        return value
    box = [value]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value: Any) -> list[Any]:
    """Every rank's value, in rank order (on every rank)."""
    if not active():
        return [value]
    out: list[Any] = [None] * world()
    _dist().all_gather_object(out, value)
    return out


def my_share(items: Sequence[T]) -> list[T]:
    """This rank's items: every world()-th one starting at rank()."""
    return list(items[rank() :: world()])


def all_reduce_mean_(tensors: Sequence[torch.Tensor]) -> None:
    """Average tensors (gradients) over ranks in place."""
    if not active():
        return
    dist = _dist()
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(world())
