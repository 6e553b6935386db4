"""Configuration of the data edits (poisoning and denoising sweeps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError
from .edits import METHODS


@dataclass
class CurationConfig:
    """Feature-guided poisoning and denoising, and their baselines."""

    methods: list[str] = field(default_factory=lambda: ["safer", "random", "reward_margin"])
    """Selection methods: safer (SAFER score), random (seeded), reward_margin (the clean RM's margin)."""
    poison_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.5, 5.0])
    """Percent of training pairs to flip, highest score first."""
    denoise_ratios: list[float] = field(default_factory=lambda: [2.0, 4.0, 6.0, 8.0, 10.0])
    """Percent of training pairs to remove, lowest score first."""
    scope: Literal["all", "safety"] = "all"
    """Candidates for editing: every pair, or only pairs of safety sources (the count stays a percent of all pairs)."""
    stratify: bool = False
    """Spread the edited pairs over sources in proportion to their candidates (removes the source confound)."""
    seed: int = 0
    """Seed of the random method."""

    def check(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ConfigError("methods", f"unknown method {bad[0]!r}; expected {', '.join(METHODS)}")
        for key in ("poison_ratios", "denoise_ratios"):
            for i, r in enumerate(getattr(self, key)):
                if not 0 < r <= 100:
                    raise ConfigError(f"{key}.{i}", f"a ratio is a percent in (0, 100], got {r}")
