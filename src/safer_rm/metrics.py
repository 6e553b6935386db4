"""Ranking metrics shared by the judge probe and the poisoning audit: AUROC and precision at n."""

from __future__ import annotations

import numpy as np


def auroc(scores: np.ndarray | list[float], labels: np.ndarray | list[int]) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random negative, ties
    counting half (Mann-Whitney U over mid-ranks). NaN without both classes."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    mid_ranks = upper - (counts - 1) / 2.0  # 1-based mean rank of each distinct value
    ranks = mid_ranks[inverse]
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def precision_at(scores: np.ndarray | list[float], positive: np.ndarray | list[bool], n: int) -> float:
    """Share of positives among the n highest-ranked (stable argsort of -scores: ties keep input order);
    NaN for n = 0."""
    top = np.argsort(-np.asarray(scores, dtype=float), kind="stable")[:n]
    return float(np.asarray(positive)[top].mean()) if n else float("nan")
