"""What a stage function gets: the run's config and run directory, and what it holds, split by kind: where
artifacts live (`paths`, a `RunLayout`), the run's data (`data`, a `RunData`) and its models (`models`, a
`ModelStore`), plus the sub-run callback the runner sets."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import distributed
from ..config import Config, config_dict
from ..data.records import PreferencePair
from .layout import RunLayout
from .model_store import ModelStore
from .run_data import RunData
from .rundir import RunDir

if TYPE_CHECKING:
    import torch


@dataclass
class GivenData:
    """Training and test pairs handed to a sub-run instead of being built from the data sources."""

    train: list[PreferencePair]
    test: list[PreferencePair]
    fingerprint: dict
    """What makes them what they are (e.g. the planted pair ids): part of the data stage's fingerprint."""
    info: dict
    rm_from: dict[int, Path] = field(default_factory=dict)
    """Reward models already trained on exactly `train` with this run's settings, by seed: the sub-run copies
    them instead of training its own."""


@dataclass
class RunContext:
    cfg: Config
    run: RunDir
    paths: RunLayout
    data: RunData
    models: ModelStore
    resume: bool = True
    given: GivenData | None = None
    subrun: Callable[[RunContext, list[str]], None] | None = None
    """Runs stages of another context (set by the runner; the audit's sub-run uses it)."""
    started: float = field(default_factory=time.time)

    @classmethod
    def create(
        cls,
        cfg: Config,
        resume: bool = True,
        given: GivenData | None = None,
        parent: RunContext | None = None,
    ) -> RunContext:
        """The context of a run; with `parent`, a sub-run's, sharing its parent's frozen-block cache folder and
        open caches and its judge's verdict cache."""
        distributed.init()
        run = RunDir(cfg.run.path, config_dict(cfg))
        paths = RunLayout(run, parent.paths.cache(), parent.paths.judgements()) if parent else RunLayout(run)
        models = ModelStore(cfg, paths, parent.models.prefix_caches if parent else {})
        ctx = cls(cfg, run, paths, RunData(cfg, paths), models, resume, given)
        if cfg.run.device == "cuda":
            ctx.device  # noqa: B018  (asked for explicitly: fail now, not in the first stage that needs it)
        return ctx

    @property
    def device(self) -> torch.device:
        """The run's device, resolved when a stage first needs it, so that planning a run imports no torch."""
        return self.models.device

    @property
    def main(self) -> bool:
        return distributed.is_main()

    @property
    def seed0(self) -> int:
        return self.cfg.run.seeds[0]
