"""Salience of every latent: how much more it fires on chosen than on rejected responses (docs/method.md §3).

    s_i = (C_i - R_i) / (C_i + R_i + 2 m),   m = mean of all 2M values {C_j} and {R_j}

C_i (R_i) sums latent i's activations over the kept positions of chosen (rejected) responses. The
reference sums raw activations, which favours latents of longer responses; `normalize` offers
`per_position` (each side's sum divided by its number of positions) and `per_response` (each response
contributes the mean over its own positions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..activations.cache import ActivationCache
from ..io import quiet

NORMALIZATIONS = ("none", "per_position", "per_response")
Encoder = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


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
        return np.lexsort((np.arange(len(self.salience)), -np.abs(self.salience)))

    def table(self, top: int | None = None) -> list[dict]:
        rows = []
        for rank, i in enumerate(self.ranking()[:top]):
            rows.append(
                {
                    "rank": rank + 1,
                    "latent": int(i),
                    "salience": float(self.salience[i]),
                    "chosen_sum": float(self.chosen_sum[i]),
                    "rejected_sum": float(self.rejected_sum[i]),
                    "chosen_count": int(self.chosen_count[i]),
                    "rejected_count": int(self.rejected_count[i]),
                    "chosen_mean": float(self.chosen_mean[i]),
                    "rejected_mean": float(self.rejected_mean[i]),
                }
            )
        return rows


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
    for batch in tqdm(
        cache.iter_batches(batch_size),
        desc="salience",
        unit="batch",
        disable=quiet(progress),
        total=-(-len(cache) // batch_size),
        leave=False,
    ):
        values, indices = encode(batch.x.float())
        values = values.double()
        side = batch.side.long()
        if normalize == "per_response":
            weight = 1.0 / per_text[batch.pair.long() * 2 + side]
        elif normalize == "per_position":
            weight = 1.0 / per_side[side]
        else:
            weight = torch.ones_like(side, dtype=torch.float64)
        flat = (side.unsqueeze(1) * num_latents + indices.long()).reshape(-1)
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
