"""Parts of the detect stage's values and summary: a reward model's training seconds (a detector's cost), the
probe detector's features and the rank correlation between the detectors."""

from __future__ import annotations

import numpy as np

from ...activations import ActivationCache
from ...curation.detectors import percentile_ranks
from ...curation.score import safer_scores
from ...io import read_csv, read_json
from ...sae.encoded import encoder
from ..context import RunContext


def _train_seconds(ctx: RunContext, variant: str, seed: int) -> float:
    path = ctx.paths.rm(variant, seed) / "train_summary.json"
    return float(read_json(path).get("train_seconds", 0.0)) if path.is_file() else 0.0


def probe_features(ctx: RunContext) -> np.ndarray:
    """Per pair: mean activation over the chosen response's kept positions minus the rejected one's, for the
    top `features.examine` latents by the firing salience (salience.csv), whatever `features.salience` ranks
    the selection by: the probe is a detector of its own and does not change with the selection option."""
    sae, _layer = ctx.models.load_sae()
    ranked = read_csv(ctx.paths.features() / "salience.csv")
    latents = [int(r["latent"]) for r in ranked[: ctx.cfg.features.examine]]
    scores = safer_scores(
        ActivationCache(ctx.paths.activations("pairs")),
        encoder(sae),
        latents,
        [],
        ctx.cfg.features.batch_size,
    )
    return scores.contributions.astype(np.float64)


def spearman_matrix(values: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Rank correlation between every two detectors: how much they agree on which pairs look wrong."""
    names = list(values)
    corr = np.corrcoef([percentile_ranks(values[d]) for d in names])
    return {a: {b: round(float(corr[i, j]), 3) for j, b in enumerate(names)} for i, a in enumerate(names)}
