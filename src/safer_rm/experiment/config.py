"""Configuration of the experiment-level analyses: the poisoning audit and the causal test."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass
class AuditConfig:
    """Poisoning audit: plant random flips, then see whether SAFER or the reward margin ranks them first."""

    enabled: bool = True
    """Run the audit as part of `safer run`."""
    ratio: float = 5.0
    """Percent of training pairs flipped at random (planted)."""
    seed: int = 1
    """Seed of the planted flips."""
    share: bool = True
    """When the run poisons at random at the same ratio (variant `poison-random-<ratio>`), plant exactly those
    flips and reuse that variant's reward model (first seed) instead of training another one; `seed` is then
    unused. Off: plant its own flips with `seed` and train the sub-run's RM."""

    def check(self) -> None:
        if not 0 < self.ratio < 100:
            raise ConfigError("ratio", f"must be a percent in (0, 100), got {self.ratio}")


@dataclass
class CausalConfig:
    """Causal test: zero the selected safety latents inside the RM (reconstruction error kept)."""

    enabled: bool = True
    """Run the causal test as part of `safer run`."""
    draws: int = 5
    """Random latent sets of the same size, for the baseline."""
    seed: int = 0
    """Seed of the random sets."""
    max_pairs: int | None = None
    """Evaluation pairs per group (safety, chat) at most; None: all."""

    def check(self) -> None:
        if self.draws < 1:
            raise ConfigError("draws", f"must be >= 1, got {self.draws}")
