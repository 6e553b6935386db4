"""What the SAE trainer hands out: the step info its hooks see, hooks themselves, log and evaluation rows,
and the results of one stage and of the two-stage training (train.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from .model import TopKSAE


@dataclass
class StepInfo:
    """What a hook sees: the live SAE after `step` optimiser steps of `stage`."""

    stage: str
    step: int
    steps: int
    """Planned steps of this stage."""
    vectors: int
    """Training vectors consumed so far in this stage."""
    lr: float
    sae: TopKSAE


@dataclass
class Hook:
    """A callback run every `every` steps (0: never in between), and optionally before the first / after the last.
    What it returns (metrics) is logged and kept in `TrainResult.evals`."""

    fn: Callable[[StepInfo], Mapping[str, float] | None]
    every: int = 0
    at_start: bool = False
    at_end: bool = True

    def due(self, step: int, when: Literal["start", "step", "end"]) -> bool:
        if when == "start":
            return self.at_start
        periodic = self.every > 0 and step > 0 and step % self.every == 0
        return periodic or (when == "end" and self.at_end)


class LogRow(NamedTuple):
    """Training statistics, averaged over the steps since the previous row."""

    step: int
    vectors: int
    lr: float
    loss: float
    nmse: float
    fvu: float
    auxk: float
    dead_fraction: float
    """Share of latents silent for more than `dead_after` vectors."""


@dataclass
class EvalRow:
    stage: str
    step: int
    metrics: dict[str, float]


@dataclass
class TrainResult:
    sae: TopKSAE
    stage: str
    steps: int
    vectors: int
    seconds: float
    final: LogRow | None
    """Statistics of the last logged interval (None when no step ran)."""
    history: list[LogRow] = field(default_factory=list)
    evals: list[EvalRow] = field(default_factory=list)

    def summary(self) -> dict[str, float | int | str]:
        """Flat statistics for the SAE's metadata file."""
        out: dict[str, float | int | str] = {
            "stage": self.stage,
            "steps": self.steps,
            "vectors": self.vectors,
            "seconds": round(self.seconds, 3),
        }
        if self.final is not None:
            out.update({k: v for k, v in self.final._asdict().items() if k not in ("step", "vectors")})
        return out


@dataclass
class TwoStageResult:
    sae: TopKSAE
    stage1: TrainResult
    stage2: TrainResult

    def summary(self) -> dict[str, float | int | str]:
        """Both stages' statistics, keys prefixed "stage1_" and "stage2_"."""
        return {
            f"{r.stage}_{k}": v
            for r in (self.stage1, self.stage2)
            for k, v in r.summary().items()
            if k != "stage"
        }
