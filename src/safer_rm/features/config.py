"""Configuration of salience, contexts and selection (the judge has its own section)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from ..typed_config import require


@dataclass
class FeaturesConfig:
    """Salience of latents (chosen vs rejected), their contexts, and the selection of safety features."""

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
