"""The per-pair SAFER score (docs/method.md §5), vectorised over the streamed cache, with per-feature
contributions kept so a user can see why a pair scored as it did.

    a(y)  = mean over the kept positions p of y of ( sum_{i in S+} z_i(p) - sum_{i in S-} z_i(p) )
    score = a(chosen) - a(rejected)

High: the features agree that the chosen response is the safer one. Low or negative: the label
disagrees with the features (likely noise)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..activations.cache import ActivationCache
from ..sae.encoded import Encoder, LatentColumns, encoded_batches


@dataclass
class SaferScores:
    pair_ids: list[str]
    score: np.ndarray
    """[n_pairs] a(chosen) - a(rejected)."""
    a_chosen: np.ndarray
    a_rejected: np.ndarray
    positions: np.ndarray
    """[n_pairs, 2] kept positions of the chosen and the rejected response."""
    latents: list[int]
    signs: list[int]
    contributions: np.ndarray
    """[n_pairs, n_features]: sign_i * (mean z_i over chosen positions - mean over rejected); rows sum to `score`."""

    def top_features(self, pair: int, n: int = 5) -> list[tuple[int, float]]:
        order = np.argsort(-np.abs(self.contributions[pair]))[:n]
        return [(self.latents[j], float(self.contributions[pair, j])) for j in order]


@torch.inference_mode()
def safer_scores(
    cache: ActivationCache,
    encode: Encoder,
    safe: Sequence[int],
    unsafe: Sequence[int],
    batch_size: int = 4096,
    progress: bool = True,
) -> SaferScores:
    latents = [*safe, *unsafe]
    signs = [1] * len(safe) + [-1] * len(unsafe)
    n_pairs = len(cache.pairs)
    column = LatentColumns(latents)
    sums = torch.zeros(n_pairs * 2, max(len(latents), 1), dtype=torch.float64)
    positions = torch.zeros(n_pairs * 2, dtype=torch.float64)
    # without latents only the positions are counted: nothing is encoded (acts and indices come empty)
    for b in encoded_batches(cache, encode if latents else None, batch_size, "pair scores", progress):
        text = b.response
        positions.index_add_(0, text, torch.ones_like(text, dtype=torch.float64))
        j = column(b.indices)
        keep = j >= 0
        rows = text.unsqueeze(1).expand_as(b.indices)
        flat = rows[keep] * sums.shape[1] + j[keep]
        sums.view(-1).index_add_(0, flat, b.acts[keep].double())
    means = sums / positions.clamp(min=1).unsqueeze(1)
    sign = torch.tensor(signs or [0], dtype=torch.float64)
    per_feature = (means[0::2] - means[1::2]) * sign
    a = (means * sign).sum(1)
    contributions = per_feature.numpy()[:, : len(latents)]
    return SaferScores(
        list(cache.pairs),
        (a[0::2] - a[1::2]).numpy(),
        a[0::2].numpy(),
        a[1::2].numpy(),
        positions.view(n_pairs, 2).numpy().astype(np.int64),
        latents,
        signs,
        contributions,
    )
