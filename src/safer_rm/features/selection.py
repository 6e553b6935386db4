"""Selecting safety features (docs/method.md §4): keep latents the judge scores at or above a threshold, take the
top N by |salience|, split by sign into a safe set S+ (salience > 0, leans chosen) and an unsafe set S-."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .types import Judgement


@dataclass
class Selection:
    safe: list[int]
    """S+: latents with salience > 0 (they fire more on chosen responses)."""
    unsafe: list[int]
    """S-: latents with salience < 0."""
    candidates: list[int] = field(default_factory=list)
    """Latents that passed the judge threshold and the interpretability filter, best |salience| first."""
    reasons: dict[int, str] = field(default_factory=dict)
    """Why each examined latent was not selected."""

    @property
    def latents(self) -> list[int]:
        return self.safe + self.unsafe

    def signs(self) -> dict[int, int]:
        return {**{i: 1 for i in self.safe}, **{i: -1 for i in self.unsafe}}

    def to_json(self) -> dict:
        return {
            "safe": self.safe,
            "unsafe": self.unsafe,
            "candidates": self.candidates,
            "reasons": {str(k): v for k, v in self.reasons.items()},
        }


def select_features(
    salience: np.ndarray,
    examined: Sequence[int],
    judgements: Mapping[int, Judgement] | None,
    threshold: float = 5.0,
    top_n: int = 32,
    uninterpretable: Mapping[int, str] | None = None,
    use_judge: bool = True,
) -> Selection:
    """`examined` are the latents that were shown to the judge (top by |salience|). Without a judge
    (`use_judge=False`) the threshold is ignored and selection is by |salience| alone."""
    uninterpretable = uninterpretable or {}
    reasons: dict[int, str] = {}
    passed = []
    for latent in sorted(examined, key=lambda i: (-abs(salience[i]), i)):
        if latent in uninterpretable:
            reasons[latent] = f"uninterpretable: {uninterpretable[latent]}"
            continue
        if salience[latent] == 0:
            reasons[latent] = "zero salience"
            continue
        if use_judge:
            j = (judgements or {}).get(latent)
            if j is None or j.score is None:
                reasons[latent] = f"no judge score ({j.status if j else 'missing'})"
                continue
            if j.score < threshold:
                reasons[latent] = f"judge score {j.score:g} < {threshold:g}"
                continue
        passed.append(latent)
    top = passed[:top_n]
    for latent in passed[top_n:]:
        reasons[latent] = f"below the top {top_n} by |salience|"
    return Selection(
        safe=[i for i in top if salience[i] > 0],
        unsafe=[i for i in top if salience[i] < 0],
        candidates=passed,
        reasons=reasons,
    )
