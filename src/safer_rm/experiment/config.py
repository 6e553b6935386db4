"""Configuration of the experiment-level analyses: the poisoning audit and the causal test."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

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
    """When the run poisons at random at the same ratio and scope (variant `poison-random-<ratio>`), plant
    exactly those flips and reuse that variant's reward models instead of training others; `seed` is then
    unused. Off: plant its own flips with `seed` and train the sub-run's RMs."""
    scope: Literal["all", "safety"] = "all"
    """Where flips are planted: among all pairs, or among safety pairs only (the threat SAFER is about; the
    count stays a percent of all pairs)."""
    share_sae: bool = True
    """When the SAE's layer is one of the frozen blocks (`activations.layer <= rm.freeze_layers`), every reward
    model of the run computes the same vectors there, so the sub-runs use the run's SAE instead of training
    another on them (features, scores and detectors are still their own). Off: each sub-run trains its own."""
    repeats: int = 1
    """Independent audits (sub-runs audit/repeat-<i>): repeat i uses the run's i-th seed (or first seed + i) for
    its reward model and SAE, and plants with `seed` + i unless shared. Results are pooled with intervals."""

    def check(self) -> None:
        if not 0 < self.ratio < 100:
            raise ConfigError("ratio", f"must be a percent in (0, 100), got {self.ratio}")
        if self.repeats < 1:
            raise ConfigError("repeats", f"must be >= 1, got {self.repeats}")


@dataclass
class DetectConfig:
    """Detectors of mislabelled or planted pairs, reported side by side: the SAFER score, the clean RM's
    in-sample margin, the out-of-fold margin (K reward models, each scoring the fold it never saw), an ensemble
    over seeds, a Bradley-Terry probe on the SAE's latents fitted out of fold, and a combination."""

    enabled: bool = False
    """Run the detectors in `safer run` (`safer inspect` and the audit always run them)."""
    folds: int = 5
    """K of the out-of-fold margin: K reward models trained on K-1 folds (pairs sharing a prompt share a fold);
    0 turns it off. Each costs about (K-1)/K of one reward-model training."""
    ensemble: int = 3
    """Reward models in the seed ensemble (the clean RM's seed and the next ones); its score is the mean margin,
    its spread the sd. 1 or 0 turns it off. Each extra member costs one training."""
    probe: bool = True
    """The SAE probe: a Bradley-Terry logistic model on per-response mean latent activations (the examined
    latents), fitted on K-1 folds and scoring the held-out fold (seconds; no reward model is trained)."""
    probe_l2: float = 1e-3
    """L2 penalty of the probe (per pair, on standardised features)."""
    seed: int = 0
    """Seed of the fold assignment."""

    def check(self) -> None:
        if self.folds == 1 or self.folds < 0:
            raise ConfigError("folds", f"must be 0 (off) or >= 2, got {self.folds}")
        if self.ensemble < 0:
            raise ConfigError("ensemble", f"must be >= 0, got {self.ensemble}")
        if self.probe_l2 < 0:
            raise ConfigError("probe_l2", f"must be >= 0, got {self.probe_l2}")


@dataclass
class InspectConfig:
    """`safer inspect`: rank suspect pairs and write a cleaned dataset, without the retraining sweep."""

    detector: str = "combined"
    """Detector that ranks suspects and decides removals: safer, margin, oof_margin, ensemble, probe, combined
    (safer + oof_margin) or combined_probe (probe + oof_margin). One that is off (e.g. oof_margin with
    `detect.folds: 0`) falls back to the last available in that list."""
    remove: float = 5.0
    """Percent of pairs removed from the cleaned set, most suspect first (ignored when `threshold` is set)."""
    threshold: float | None = None
    """Remove every pair whose detector score is below this value instead of a fixed percent."""
    show: int = 50
    """Suspect pairs shown in the inspection report (all of them are in inspect/suspects.csv)."""

    def check(self) -> None:
        from ..curation.detectors import DETECTORS

        if self.detector not in DETECTORS:
            raise ConfigError(
                "detector", f"unknown detector {self.detector!r}; expected {', '.join(DETECTORS)}"
            )
        if not 0 <= self.remove < 100:
            raise ConfigError("remove", f"must be a percent in [0, 100), got {self.remove}")
        if self.show < 1:
            raise ConfigError("show", f"must be >= 1, got {self.show}")


@dataclass
class CausalConfig:
    """Causal test: scale the selected safety latents inside the RM (reconstruction error kept) and compare
    with random latent sets of the same size, on every RewardBench section and on the held-out pairs."""

    enabled: bool = True
    """Run the causal test as part of `safer run`."""
    scales: list[float] = field(default_factory=lambda: [0.0])
    """Factors the selected (and the random) latents' activations are multiplied by, one condition each:
    0 zeroes them (ablation), 2 doubles them, a negative factor flips them; 1 (no edit) is not allowed."""
    draws: int = 5
    """Random latent sets of the same size, for the baseline (drawn once, scaled by every factor)."""
    seed: int = 0
    """Seed of the random sets and of the evaluation samples."""
    max_pairs: int | None = None
    """Evaluation pairs per group (each RewardBench section, held-out safety and chat) at most, a seeded sample
    stratified by subset (held out: by source); None: all."""

    def check(self) -> None:
        if self.draws < 1:
            raise ConfigError("draws", f"must be >= 1, got {self.draws}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ConfigError("max_pairs", f"must be >= 1 or null, got {self.max_pairs}")
        if not isinstance(self.scales, list) or not self.scales:
            raise ConfigError("scales", f"must be a non-empty list of factors, got {self.scales!r}")
        for i, s in enumerate(self.scales):
            if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s):
                raise ConfigError(f"scales.{i}", f"must be a finite number, got {s!r}")
            if s == 1.0:
                raise ConfigError(f"scales.{i}", "1.0 leaves the latents unchanged (the base condition)")
        if len(set(self.scales)) < len(self.scales):
            raise ConfigError("scales", f"has a factor twice: {self.scales}")
