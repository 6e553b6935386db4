"""Ready-made hooks for the trainer: evaluation on held-out batches, and checkpoints in sparsify's layout.
The caller chooses and injects them; the training loop knows neither."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from pathlib import Path

from torch import Tensor

from .files import SAEMeta, save_sae
from .metrics import evaluate_sae
from .records import Hook, StepInfo


def eval_hook(batches: Iterable[Tensor], every: int = 0, *, at_start: bool = False) -> Hook:
    """Evaluate NMSE, FVU, L0 and dead fraction over `batches` (re-iterable) every `every` steps and at the end."""

    def run(info: StepInfo) -> Mapping[str, float]:
        return {k: float(v) for k, v in asdict(evaluate_sae(info.sae, batches)).items()}

    return Hook(run, every=every, at_start=at_start)


def checkpoint_hook(root: str | os.PathLike, hookpoint: str, every: int, meta: SAEMeta | None = None) -> Hook:
    """Save the SAE to `<root>/<stage>/<hookpoint>/` every `every` steps and at the end (latest replaces previous)."""
    base = meta or SAEMeta()

    def run(info: StepInfo) -> None:
        training = {**base.training, "stage": info.stage, "step": info.step, "vectors": info.vectors}
        save_sae(info.sae, Path(root) / info.stage, hookpoint, replace(base, training=training))

    return Hook(run, every=every)
