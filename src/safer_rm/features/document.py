"""The features stage's outputs as plain data: `features.json` (what the dashboard renders), a comparison of
selections with and without the judge, and diagnostics of the pair scores."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict

import numpy as np

from ..data.records import PreferencePair
from .salience import Salience, rank_order
from .selection import Selection
from .types import Judgement, LatentContexts


def features_document(
    sal: Salience,
    items: Sequence[LatentContexts],
    judgements: Mapping[int, Judgement],
    selection: Selection,
    uninterpretable: Mapping[int, str],
    judge_cfg,
    layer: int,
    normalize: str,
    ranking: str = "firing",
    ranked: np.ndarray | None = None,
    attribution: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """`ranked`: the values latents were ranked by (the firing salience by default); `attribution`: the
    per-latent reward effects (Attribution.latent_table), shown beside each latent."""
    ranked = sal.salience if ranked is None else ranked
    rank = {int(latent): r + 1 for r, latent in enumerate(rank_order(ranked))}
    sign = selection.signs()
    latents = []
    for item in items:
        i = item.latent
        j = judgements.get(i)
        latents.append(
            {
                "latent": i,
                "rank": rank[i],
                **sal.stats(i),
                "selected": {1: "safe", -1: "unsafe"}.get(sign.get(i, 0)),
                "reason": selection.reasons.get(i)
                or (f"uninterpretable: {uninterpretable[i]}" if i in uninterpretable else None),
                "judge": {"score": j.score, "explanation": j.explanation, "status": j.status}
                if j
                else {"score": None, "explanation": "", "status": "not judged"},
                "n_distinct_tokens": item.n_distinct_tokens,
                "contexts": [asdict(c) for c in item.contexts],
                **(
                    {"reward_effect": {k: float(v[i]) for k, v in attribution.items()}}
                    if attribution is not None
                    else {}
                ),
            }
        )
    return {
        "judge": {
            "kind": judge_cfg.kind,
            "model": getattr(judge_cfg, "model", ""),
            "prompt_version": getattr(judge_cfg, "prompt_version", ""),
        },
        "normalize": normalize,
        "ranking": ranking,
        "layer": layer,
        "selection": {"safe": selection.safe, "unsafe": selection.unsafe},
        "latents": latents,
    }


def compare_selections(a: Selection, b: Selection) -> dict:
    """How a judged selection (a) differs from selection by salience alone (b)."""
    sa, sb = set(a.latents), set(b.latents)
    return {
        "selected": len(sa),
        "selected_without_judge": len(sb),
        "shared": len(sa & sb),
        "jaccard": len(sa & sb) / len(sa | sb) if sa | sb else 1.0,
        "only_with_judge": sorted(sa - sb),
        "only_without_judge": sorted(sb - sa),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def score_diagnostics(
    pairs: Sequence[PreferencePair], score: np.ndarray, margin: np.ndarray, top: float = 5.0
) -> dict:
    """Correlations of the SAFER score with the reward margin and with the length difference, and which
    sources fill the top `top` % (the planning prototype found both confounds)."""
    length = np.array([len(p.chosen) - len(p.rejected) for p in pairs], dtype=float)
    n = max(1, int(round(len(pairs) * top / 100)))
    order = np.argsort(-score, kind="stable")[:n]
    return {
        "spearman_margin": _spearman(score, margin),
        "spearman_length_diff": _spearman(score, length),
        f"top{top:g}pct_sources": dict(Counter(pairs[i].source for i in order)),
        "mean_score": float(score.mean()),
        "frac_negative": float((score < 0).mean()),
    }
