"""Safety-specific features: a candidate is kept only if zeroing it inside the reward model (the SAE spliced in
with the error term kept) moves the margins of safety pairs at least `specificity` times more than those of
chat pairs:

    ratio_i = mean over safety pairs |m - m_(-i)|  /  mean over chat pairs |m - m_(-i)|

measured on held-out pairs. Candidates are tested in ranking order until `top_n` are kept, so the cost is
one spliced scoring pass of the held-out sample per tested candidate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..data.records import PreferencePair

Margins = Callable[[Sequence[int]], np.ndarray]
"""latents to zero -> margins of the measured pairs (safety pairs first, then chat pairs)."""


@dataclass
class Specificity:
    kept: list[int]
    tested: dict[int, dict] = field(default_factory=dict)
    """Per tested latent: mean |margin change| on safety and on chat pairs, and their ratio."""
    reasons: dict[int, str] = field(default_factory=dict)
    """Why a tested candidate was dropped."""

    def to_json(self, pairs: dict[str, int], threshold: float) -> dict:
        return {
            "threshold": threshold,
            "pairs": pairs,
            "kept": self.kept,
            "tested": {str(k): v for k, v in self.tested.items()},
        }


def ratio(safety: float, chat: float) -> float | None:
    """safety / chat; infinite when only safety moves, None when neither does."""
    if chat > 0:
        return safety / chat
    return float("inf") if safety > 0 else None


def specific_candidates(
    candidates: Sequence[int],
    margins: Margins,
    n_safety: int,
    threshold: float,
    top_n: int,
) -> Specificity:
    """Test `candidates` (best first) until `top_n` pass `ratio >= threshold`; `margins(latents)` scores the
    measured pairs with those latents zeroed (the first `n_safety` are the safety pairs)."""
    base = margins([])
    out = Specificity(kept=[])
    for latent in candidates:
        if len(out.kept) >= top_n:
            break
        change = np.abs(base - margins([latent]))
        s, c = float(change[:n_safety].mean()), float(change[n_safety:].mean())
        r = ratio(s, c)
        out.tested[int(latent)] = {"safety": s, "chat": c, "ratio": r}
        if r is not None and r >= threshold:
            out.kept.append(int(latent))
        else:
            shown = "undefined (no margin moves)" if r is None else f"{r:.2f}"
            out.reasons[int(latent)] = f"specificity {shown} < {threshold:g}"
    return out


def specificity_pairs(
    pairs: Sequence[PreferencePair], max_pairs: int | None, seed: int = 0
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Held-out (safety, chat) pairs, each a seeded sample of at most `max_pairs` in input order."""
    rng = np.random.default_rng(seed)
    out = []
    for kind in ("safety", "chat"):
        group = [p for p in pairs if p.kind == kind]
        if max_pairs is not None and len(group) > max_pairs:
            group = [group[i] for i in sorted(rng.choice(len(group), max_pairs, replace=False))]
        out.append(group)
    return out[0], out[1]
