"""Configuration of salience, contexts and selection (the judge has its own section)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from ..typed_config import require


@dataclass
class FeaturesConfig:
    """Salience of latents (chosen vs rejected), their contexts, and the selection of safety features."""

    salience: Literal["firing", "attribution"] = "firing"
    """How latents are ranked: `firing` = the paper's salience (how differently a latent fires on chosen and
    rejected responses); `attribution` = its mean reward attribution on the chosen-minus-rejected margin (the
    `attribution` stage: how much the reward model's margin runs through it). The sign splits S+ and S-
    either way."""
    normalize: Literal["none", "per_position", "per_response"] = "none"
    """Salience sums: `none` = the reference's raw sums; `per_position` divides each side by its positions;
    `per_response` lets each response contribute its mean (removes the pull of long responses)."""
    examine: int = 256
    """Top latents by |salience| whose contexts are collected and judged."""
    top_m: int = 100
    """Top activations kept per examined latent."""
    window: int = 32
    """Context tokens on each side of the activated token."""
    per_token: int = 3
    """Contexts kept per distinct activated token."""
    max_contexts: int = 20
    """Contexts kept per latent (and shown to the judge, up to the judge's own limit)."""
    max_distinct_tokens: int = 32
    """A latent whose top activations fall on more distinct tokens is dropped as uninterpretable."""
    min_contexts: int = 5
    """A latent with fewer activations is dropped as uninterpretable."""
    threshold: float = 5.0
    """Keep latents the judge scores at or above this (1-5 rubric); ignored by the `none` judge."""
    top_n: int = 32
    """Selected features: the top N by |salience| among those that pass, split by sign into S+ and S-."""
    batch_size: int = 4096
    """Vectors per batch when streaming the activation cache."""
    specific: bool = False
    """Keep only candidates whose ablation inside the RM moves safety-pair margins at least `specificity` times
    more than chat-pair margins (mean |margin change| on held-out pairs of each kind, SAE spliced in with the
    error term kept); candidates are tested in ranking order until `top_n` are kept."""
    specificity: float = 2.0
    """The ratio a candidate must reach with `specific: true`."""
    specific_pairs: int | None = 200
    """Held-out pairs of each kind the specificity is measured on at most (a seeded sample); None: all."""

    def check(self) -> None:
        require(
            self,
            (
                "examine",
                "top_m",
                "window",
                "per_token",
                "max_contexts",
                "max_distinct_tokens",
                "top_n",
                "batch_size",
            ),
            at_least=1,
        )
        if not 1 <= self.threshold <= 5:
            raise ConfigError("threshold", f"must be in [1, 5], got {self.threshold}")
        require(self, ("min_contexts",), at_least=0)
        require(self, ("specificity",), above=0)
        if self.specific_pairs is not None:
            require(self, ("specific_pairs",), at_least=2)


@dataclass
class AttributionConfig:
    """Reward attribution of every latent (`safer attribute`): z_i * (d_i . dr/dh) summed over a text's
    positions, one backward pass per batch through the spliced SAE, on every training pair."""

    enabled: bool = True
    """Run it as part of `safer run` (it always runs when `features.salience: attribution`)."""
    batch_size: int = 16
    """Pairs per forward and backward pass."""
    check_pairs: int = 64
    """Training pairs (a seeded sample) on which attribution is checked against exact ablation."""
    check_latents: int = 16
    """Latents checked: those with the largest mean |margin contribution|, each zeroed alone."""
    top: int = 3
    """Latent contributions listed per pair in scores/pairs.csv."""
    seed: int = 0

    def check(self) -> None:
        require(self, ("batch_size", "top"), at_least=1)
        require(self, ("check_pairs", "check_latents"), at_least=0)
