"""The per-pair SAFER score (docs/method.md §5), vectorised over the streamed cache, with per-feature
contributions kept so a user can see why a pair scored as it did.

    a(y)  = mean over the kept positions p of y of ( sum_{i in S+} z_i(p) - sum_{i in S-} z_i(p) )
    score = a(chosen) - a(rejected)

High: the features agree that the chosen response is the safer one. Low or negative: the label
disagrees with the features (likely noise)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..activations.cache import ActivationCache
from ..io import quiet

Encoder = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


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
    slot = {latent: j for j, latent in enumerate(latents)}
    max_latent = max(latents) + 1 if latents else 1
    lookup = torch.full((max_latent,), -1, dtype=torch.long)
    for latent, j in slot.items():
        lookup[latent] = j
    sums = torch.zeros(n_pairs * 2, max(len(latents), 1), dtype=torch.float64)
    positions = torch.zeros(n_pairs * 2, dtype=torch.float64)
    for batch in tqdm(
        cache.iter_batches(batch_size),
        desc="pair scores",
        unit="batch",
        disable=quiet(progress),
        total=-(-len(cache) // batch_size),
        leave=False,
    ):
        text = batch.pair.long() * 2 + batch.side.long()
        positions.index_add_(0, text, torch.ones_like(text, dtype=torch.float64))
        if not latents:
            continue
        values, indices = encode(batch.x.float())
        idx = indices.long()
        j = torch.where(idx < max_latent, lookup[idx.clamp(max=max_latent - 1)], torch.full_like(idx, -1))
        keep = j >= 0
        rows = text.unsqueeze(1).expand_as(idx)
        flat = rows[keep] * sums.shape[1] + j[keep]
        sums.view(-1).index_add_(0, flat, values[keep].double())
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
