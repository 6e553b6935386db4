"""Data edits (docs/method.md §6): poisoning swaps chosen and rejected for the top q % of pairs by a score,
denoising removes the bottom q %. Every edit yields a new dataset plus a record of which pairs changed and
why; the input list is never modified.

Selection methods:
- `safer`: the SAFER pair score (poison the highest, remove the lowest);
- `random`: a seeded random q % (the same pairs for poisoning and denoising with the same seed);
- `reward_margin`: the clean RM's own margin r(chosen) - r(rejected) (poison the largest, remove the most
  negative).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..data.records import PreferencePair

MODES = ("poison", "denoise")
METHODS = ("safer", "random", "reward_margin")


def edit_count(n_pairs: int, ratio: float) -> int:
    """Pairs edited for a ratio in percent of the whole training set."""
    return int(round(n_pairs * ratio / 100.0))


@dataclass
class Edit:
    pairs: list[PreferencePair]
    records: list[dict] = field(default_factory=list)
    """One row per changed pair: id, source, kind, action, rank, value (the score used)."""

    def source_mix(self) -> dict[str, int]:
        mix: dict[str, int] = defaultdict(int)
        for r in self.records:
            mix[r["source"]] += 1
        return dict(sorted(mix.items()))


def rank_for_edit(
    mode: str,
    method: str,
    values: np.ndarray | None,
    n: int,
    candidates: Sequence[int],
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> list[int]:
    """Indices of the `n` pairs to edit, most-selected first. `values` is the SAFER score or the margin
    (higher = more confidently chosen-is-better); poisoning takes the highest, denoising the lowest. With
    `groups`, the n pairs are split across groups in proportion to their candidates (stratified)."""
    if mode not in MODES or method not in METHODS:
        raise ValueError(f"unknown edit {mode}/{method}")
    candidates = list(candidates)
    if groups is not None:
        by_group: dict[str, list[int]] = defaultdict(list)
        for i in candidates:
            by_group[groups[i]].append(i)
        names = sorted(by_group)
        raw = {g: n * len(by_group[g]) / max(len(candidates), 1) for g in names}
        take = {g: int(raw[g]) for g in names}
        for g in sorted(names, key=lambda g: raw[g] - take[g], reverse=True)[: n - sum(take.values())]:
            take[g] += 1
        picked = [i for g in names for i in rank_for_edit(mode, method, values, take[g], by_group[g], seed)]
        if method == "random":
            return picked
        sign = -1 if mode == "poison" else 1
        return sorted(picked, key=lambda i: (sign * values[i], i))
    if method == "random":
        rng = random.Random(seed)
        return rng.sample(candidates, min(n, len(candidates)))
    if values is None:
        raise ValueError(f"method {method} needs scores")
    sign = -1 if mode == "poison" else 1  # poison: descending; denoise: ascending; ties by index
    return sorted(candidates, key=lambda i: (sign * float(values[i]), i))[:n]


def apply_edit(
    pairs: Sequence[PreferencePair],
    chosen: Sequence[int],
    mode: str,
    method: str,
    values: np.ndarray | None = None,
) -> Edit:
    """A new dataset with the chosen pairs flipped (poison) or removed (denoise)."""
    rank = {i: r for r, i in enumerate(chosen)}
    out, records = [], []
    for i, pair in enumerate(pairs):
        if i not in rank:
            out.append(pair)
            continue
        records.append(
            {
                "id": pair.id,
                "source": pair.source,
                "kind": pair.kind,
                "action": "flip" if mode == "poison" else "remove",
                "rank": rank[i] + 1,
                "method": method,
                "value": None if values is None else float(values[i]),
            }
        )
        if mode == "poison":
            out.append(pair.swapped(f"{method}:rank{rank[i] + 1}"))
    records.sort(key=lambda r: r["rank"])
    return Edit(out, records)
