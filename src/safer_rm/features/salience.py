"""Salience of every latent: how much more it fires on chosen than on rejected responses (docs/method.md §3).

    s_i = (C_i - R_i) / (C_i + R_i + 2 m),   m = mean of all 2M values {C_j} and {R_j}

C_i (R_i) sums latent i's activations over the kept positions of chosen (rejected) responses. The
reference sums raw activations, which favours latents of longer responses; `normalize` offers
`per_position` (each side's sum divided by its number of positions) and `per_response` (each response
contributes the mean over its own positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..activations.cache import ActivationCache
from ..sae.encoded import Encoder, encoded_batches

NORMALIZATIONS = ("none", "per_position", "per_response")


@dataclass
class Salience:
    """Per-latent statistics; arrays of length num_latents."""

    salience: np.ndarray
    chosen_sum: np.ndarray
    rejected_sum: np.ndarray
    chosen_count: np.ndarray
    """Positions (of chosen responses) where the latent is active."""
    rejected_count: np.ndarray
    chosen_mean: np.ndarray
    """Mean activation of the latent where active on the chosen side (0 if never)."""
    rejected_mean: np.ndarray
    normalize: str = "none"

    def ranking(self) -> np.ndarray:
        """Latent ids by |s| descending (ties by id)."""
        return rank_order(self.salience)

    def stats(self, i: int) -> dict:
        """Latent i's statistics as plain numbers (in a row of salience.csv and an entry of features.json)."""
        return {
            "salience": float(self.salience[i]),
            "chosen_sum": float(self.chosen_sum[i]),
            "rejected_sum": float(self.rejected_sum[i]),
            "chosen_count": int(self.chosen_count[i]),
            "rejected_count": int(self.rejected_count[i]),
            "chosen_mean": float(self.chosen_mean[i]),
            "rejected_mean": float(self.rejected_mean[i]),
        }

    def table(self, top: int | None = None) -> list[dict]:
        return [
            {"rank": rank + 1, "latent": int(i), **self.stats(i)}
            for rank, i in enumerate(self.ranking()[:top])
        ]


def rank_order(values: np.ndarray) -> np.ndarray:
    """Indices by |value| descending, ties by index."""
    return np.lexsort((np.arange(len(values)), -np.abs(values)))


def salience_from_sums(chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    m = np.concatenate([chosen, rejected]).mean()
    denom = chosen + rejected + 2 * m
    return np.divide(chosen - rejected, denom, out=np.zeros_like(chosen, dtype=np.float64), where=denom > 0)


@torch.inference_mode()
def compute_salience(
    cache: ActivationCache,
    encode: Encoder,
    num_latents: int,
    normalize: str = "none",
    batch_size: int = 4096,
    progress: bool = True,
) -> Salience:
    """One streaming pass over the cache: scatter-add the top-k activations of each vector by side."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}")
    raw = torch.zeros(2 * num_latents, dtype=torch.float64)
    weighted = torch.zeros(2 * num_latents, dtype=torch.float64)
    counts = torch.zeros(2 * num_latents, dtype=torch.float64)
    per_text = torch.zeros(len(cache.pairs) * 2, dtype=torch.float64)
    for shard in cache.iter_shards(
        ("pair", "side")
    ):  # positions per response and per side (index fields only)
        per_text.index_add_(
            0,
            shard["pair"].long() * 2 + shard["side"].long(),
            torch.ones(shard["pair"].shape[0], dtype=torch.float64),
        )
    per_side = torch.stack([per_text[0::2].sum(), per_text[1::2].sum()])
    for b in encoded_batches(cache, encode, batch_size, "salience", progress):
        values = b.acts.double()
        if normalize == "per_response":
            weight = 1.0 / per_text[b.response]
        elif normalize == "per_position":
            weight = 1.0 / per_side[b.side]
        else:
            weight = torch.ones_like(b.side, dtype=torch.float64)
        flat = (b.side.unsqueeze(1) * num_latents + b.indices).reshape(-1)
        raw.index_add_(0, flat, values.reshape(-1))
        weighted.index_add_(0, flat, (values * weight.unsqueeze(1)).reshape(-1))
        counts.index_add_(0, flat, (values > 0).double().reshape(-1))
    raw, weighted, counts = (t.view(2, num_latents).numpy() for t in (raw, weighted, counts))
    means = np.divide(raw, counts, out=np.zeros_like(raw), where=counts > 0)
    return Salience(
        salience_from_sums(weighted[0], weighted[1]),
        weighted[0],
        weighted[1],
        counts[0].astype(np.int64),
        counts[1].astype(np.int64),
        means[0],
        means[1],
        normalize,
    )
