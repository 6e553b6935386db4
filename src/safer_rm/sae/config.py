"""Configuration of the TopK sparse autoencoder and its two-stage training (docs/method.md §2)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from ..typed_config import require


@dataclass
class SAEConfig:
    """TopK SAE on standardised reward-model hidden states, trained in two stages."""

    path: str | None = None
    """Use this trained SAE instead of training one: a folder in sparsify's layout (<path>/layers.<L>/ or the
    hookpoint folder itself). It is checked against the layer's width and layer, then evaluated as usual."""
    num_latents: int = 0
    """Number of latents; 0 means `expansion` x the hidden width (the paper: 16,384 = 8 x 2048)."""
    expansion: int = 8
    """Latents per hidden dimension, used when `num_latents` is 0."""
    k: int = 64
    """Active latents per vector (TopK)."""
    batch_size: int = 4096
    """Vectors per optimiser step; the activation loader forms batches of this size."""
    stage1_lr: float = 5e-4
    """Peak Adam learning rate of stage 1 (general text)."""
    stage2_lr: float = 3e-4
    """Peak Adam learning rate of stage 2 (safety preference data), continuing from stage 1."""
    stage1_tokens: int = 100_000_000
    """Vectors (tokens) seen in stage 1; its batches are cycled when they hold fewer (the paper: 100M tokens)."""
    stage2_epochs: float = 1.0
    """Passes over the stage-2 vectors (0 skips stage 2)."""
    auxk: bool = True
    """Add the AuxK loss, which makes dead latents predict the residual and so revives them."""
    auxk_alpha: float = 1 / 32
    """Weight of the AuxK loss (1/32 as in OpenAI's TopK paper and sparsify)."""
    dead_after: int = 10_000_000
    """A latent that has not fired for this many training vectors counts as dead (AuxK, dead fraction in logs); lower it for small runs."""
    renorm_every: int = 10
    """Renormalise the decoder directions to unit length every N steps (and at the end)."""
    warmup_frac: float = 0.05
    """Share of each stage's steps for linear learning-rate warm-up."""
    decay_frac: float = 0.20
    """Share of each stage's steps for the final linear decay to zero."""
    log_every: int = 10
    """Record the training loss and refresh the progress bar every N steps."""
    seed: int = 0
    """Seed of the SAE's initialisation."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Dtype of the SAE parameters (float32 is recommended on CPU)."""

    def check(self) -> None:
        require(self, ("num_latents", "dead_after", "stage2_epochs", "auxk_alpha"), at_least=0)
        require(
            self, ("expansion", "k", "batch_size", "stage1_tokens", "renorm_every", "log_every"), at_least=1
        )
        require(self, ("stage1_lr", "stage2_lr"), above=0)
        for key in ("warmup_frac", "decay_frac"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(key, f"must be in [0, 1), got {getattr(self, key)}")
        if self.warmup_frac + self.decay_frac > 1:
            raise ConfigError(
                "decay_frac",
                f"warmup_frac + decay_frac must be <= 1, got {self.warmup_frac} + {self.decay_frac}",
            )
        if self.num_latents and self.k > self.num_latents:
            raise ConfigError("k", f"must be <= num_latents ({self.num_latents}), got {self.k}")

    def latents_for(self, d_in: int) -> int:
        """The number of latents of an SAE on vectors of width `d_in`."""
        n = self.num_latents or self.expansion * d_in
        if self.k > n:
            raise ConfigError("k", f"must be <= the number of latents ({n} for width {d_in}), got {self.k}")
        return n

    def stage1_steps(self) -> int:
        """Optimiser steps of stage 1: `stage1_tokens` / `batch_size`, rounded up."""
        return math.ceil(self.stage1_tokens / self.batch_size)

    def stage2_steps(self, batches_per_epoch: int) -> int:
        """Optimiser steps of stage 2: `stage2_epochs` passes over `batches_per_epoch` batches, rounded up."""
        return math.ceil(self.stage2_epochs * batches_per_epoch)
