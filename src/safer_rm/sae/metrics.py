"""Reconstruction and sparsity metrics of an SAE, per batch and streamed over an evaluation set.

- NMSE (the method's loss): mean over vectors of ||x_hat - x||^2 / ||x||^2.
- FVU (sparsify's): sum of squared errors / total variance around the mean vector. Per batch it is exactly
  sparsify's `fvu`; over a streamed set the mean and variance are those of the whole set (pooled with
  Chan's parallel update, so they do not depend on how the set is cut into batches).
- L0: nonzero latent activations per vector (<= k; a selected latent can be 0 after the ReLU).
- Dead fraction: share of latents never nonzero over the whole evaluation set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sized
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .model import TopKSAE

EPS = 1e-12
"""Floor of ||x||^2 in NMSE, so that an all-zero vector gives a large but finite error."""


def squared_error(x: Tensor, x_hat: Tensor) -> Tensor:
    """[N] squared reconstruction errors ||x_hat - x||^2."""
    return (x_hat - x).pow(2).sum(-1)


def nmse(x: Tensor, x_hat: Tensor) -> Tensor:
    """Mean over vectors of ||x_hat - x||^2 / ||x||^2 (a 0-d tensor, differentiable)."""
    return (squared_error(x, x_hat) / x.pow(2).sum(-1).clamp_min(EPS)).mean()


def fvu(x: Tensor, x_hat: Tensor) -> Tensor:
    """Sum of squared errors over the batch's total variance around its mean vector (sparsify's `fvu`)."""
    return squared_error(x, x_hat).sum() / (x - x.mean(0)).pow(2).sum()


def l0(acts: Tensor) -> Tensor:
    """Mean number of nonzero activations per vector, from [N, k] top-k (or [N, latents] dense) activations."""
    return (acts != 0).sum(-1, dtype=torch.float32).mean()


def fired_latents(acts: Tensor, indices: Tensor, num_latents: int) -> Tensor:
    """[latents] bool: which latents have a nonzero activation in this batch (no host sync)."""
    slots = indices.masked_fill(acts == 0, num_latents).flatten()
    fired = torch.zeros(num_latents + 1, dtype=torch.bool, device=indices.device)
    fired[slots] = True
    return fired[:num_latents]


@dataclass
class SAEMetrics:
    """Metrics of an SAE over an evaluation set."""

    vectors: int
    nmse: float
    fvu: float
    l0: float
    dead_fraction: float
    """Share of latents never active over the set."""


class MetricAccumulator:
    """Streams batches into the metrics of `SAEMetrics`; its memory is O(d + latents), not O(data)."""

    def __init__(self, d_in: int, num_latents: int, device: torch.device | str = "cpu"):
        self.n = 0
        self.mean = torch.zeros(d_in, dtype=torch.float64, device=device)
        self.m2 = torch.zeros((), dtype=torch.float64, device=device)
        self.sse = torch.zeros((), dtype=torch.float64, device=device)
        self.nmse_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.nonzero = torch.zeros((), dtype=torch.float64, device=device)
        self.fired = torch.zeros(num_latents, dtype=torch.bool, device=device)

    @torch.no_grad()
    def add(self, x: Tensor, x_hat: Tensor, acts: Tensor, indices: Tensor) -> None:
        x, x_hat = x.double(), x_hat.double()
        b = x.shape[0]
        if b == 0:
            return
        err = squared_error(x, x_hat)
        self.sse += err.sum()
        self.nmse_sum += (err / x.pow(2).sum(-1).clamp_min(EPS)).sum()
        self.nonzero += (acts != 0).sum()
        self.fired |= fired_latents(acts, indices, self.fired.numel())
        batch_mean = x.mean(0)
        batch_m2 = (x - batch_mean).pow(2).sum()
        delta = batch_mean - self.mean
        total = self.n + b
        self.m2 += batch_m2 + delta.pow(2).sum() * (self.n * b / total)
        self.mean += delta * (b / total)
        self.n = total

    def result(self) -> SAEMetrics:
        if self.n == 0:
            raise ValueError("no vectors to evaluate")
        return SAEMetrics(
            vectors=self.n,
            nmse=float(self.nmse_sum / self.n),
            fvu=float(self.sse / self.m2) if self.m2 > 0 else float("nan"),
            l0=float(self.nonzero / self.n),
            dead_fraction=float((~self.fired).double().mean()),
        )


@torch.no_grad()
def evaluate_sae(sae: TopKSAE, batches: Iterable[Tensor]) -> SAEMetrics:
    """NMSE, FVU, L0 and dead fraction of `sae` over every vector of `batches` ([B, d] tensors)."""
    acc = MetricAccumulator(sae.d_in, sae.num_latents, sae.device)
    total = len(batches) if isinstance(batches, Sized) else None
    for x in tqdm(batches, total=total, desc="SAE eval", unit="batch", disable=None, leave=False):
        x = x.to(sae.device, sae.dtype)
        acts, indices = sae.encode(x)
        acc.add(x, sae.decode(acts, indices), acts, indices)
    return acc.result()
