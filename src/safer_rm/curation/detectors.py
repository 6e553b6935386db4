"""Detectors of mislabelled or planted pairs beyond the SAFER score, as pure functions: the fold assignment of
the out-of-fold margin, the SAE probe fitted out of fold, the rank combination, and how well each detector
ranks known flips first. Every detector's value is "higher = the label looks right", like the SAFER score and
the reward margin, so the most suspect pairs are the lowest.

- out-of-fold margin (confident learning's self-confidence, cleanlab): r(chosen) - r(rejected) from a reward
  model that never saw the pair (K-fold; pairs sharing a prompt share a fold, so a repeated prompt cannot leak);
- ensemble: the mean margin of reward models trained with different seeds (its sd is the spread);
- probe: a Bradley-Terry logistic model P(chosen > rejected) = sigmoid(w . (f(chosen) - f(rejected))) on the
  per-response mean activations f of the examined SAE latents, fitted on K-1 folds and scoring the held-out
  one; SAFER's features, weighted by the data instead of by a judge and a hard top-32;
- combined: the mean of the percentile ranks of the SAFER-based and the out-of-fold detectors. Ranks, because
  the scores live on unrelated scales; equal weights, because no planted labels may be used to fit them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from ..data.records import PreferencePair
from ..metrics import auroc
from ..stats import Interval

DETECTORS = ("safer", "margin", "oof_margin", "ensemble", "probe", "combined", "combined_probe")
"""Every detector, in report order (higher value = the label looks right; the lowest are the suspects)."""
DEFINITIONS = {
    "safer": "SAFER score a(chosen) - a(rejected) of the selected features",
    "margin": "the reward model's own margin r(chosen) - r(rejected) on the pairs it was trained on (in-sample)",
    "oof_margin": "margin of a reward model that never saw the pair (K-fold, prompt groups kept together)",
    "ensemble": "mean margin of reward models of several seeds trained on the pairs (in-sample)",
    "probe": "Bradley-Terry probe on per-response mean activations of the examined SAE latents, its weights "
    "fitted out of fold (the latents and the SAE come from all pairs)",
    "combined": "mean percentile rank of safer and oof_margin (no labels fitted)",
    "combined_probe": "mean percentile rank of probe and oof_margin (no labels fitted)",
}
"""What each detector is (reports, dataset cards); the stage adjusts `margin` and the combinations to a run."""


def assign_folds(pairs: Sequence[PreferencePair], k: int, seed: int = 0) -> np.ndarray:
    """Fold (0..k-1) of every pair: prompt groups in a seeded order, each to the fold with the fewest pairs so
    far (largest groups first), so folds are disjoint, cover every pair and differ in size by at most one group."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p.prompt_key(), []).append(i)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    keys.sort(key=lambda g: -len(groups[g]))  # stable: the shuffled order breaks ties
    fold = np.full(len(pairs), -1, dtype=np.int64)
    sizes = np.zeros(k, dtype=np.int64)
    for g in keys:
        f = int(np.argmin(sizes))
        fold[groups[g]] = f
        sizes[f] += len(groups[g])
    return fold


def percentile_ranks(x: np.ndarray) -> np.ndarray:
    """Mid-rank of every value scaled to (0, 1]; ties share their mean rank."""
    x = np.asarray(x, dtype=float)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    mid = np.cumsum(counts) - (counts - 1) / 2.0
    return mid[inverse] / len(x)


def combine_ranks(*scores: np.ndarray) -> np.ndarray:
    """Mean percentile rank over detectors (each: higher = the label looks right)."""
    return np.mean([percentile_ranks(s) for s in scores], axis=0)


def fit_probe(x: np.ndarray, l2: float = 1e-3, steps: int = 200) -> np.ndarray:
    """Weights w of P(chosen > rejected) = sigmoid(x . w), x = f(chosen) - f(rejected) per pair, every label
    "chosen": no intercept, so swapping a pair's sides flips its probability. Mean logistic loss + l2 |w|^2,
    L-BFGS (float64, deterministic)."""
    import torch

    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    w = torch.zeros(xt.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.softplus(-(xt @ w)).mean() + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy()


def probe_oof(x: np.ndarray, fold: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """Out-of-fold probe margin x . w of every pair, w fitted on the other folds (features scaled by the
    training folds' root mean square, not centred: centring would break the side symmetry)."""
    out = np.zeros(len(x), dtype=np.float64)
    for f in np.unique(fold):
        train, held = fold != f, fold == f
        scale = np.sqrt((x[train] ** 2).mean(axis=0)) + 1e-8
        w = fit_probe(x[train] / scale, l2)
        out[held] = (x[held] / scale) @ w
    return out


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision of ranking positives first by descending score (ties in input order); NaN without
    positives."""
    pos = np.asarray(positive, dtype=bool)
    if not pos.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    hits = pos[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


RANKING_METRICS = ("auroc", "ap", "precision")


def ranking_metrics(suspicion: np.ndarray, positive: np.ndarray) -> dict[str, float]:
    """AUROC, average precision and precision at the number of positives of a suspicion score (high = suspect):
    the values of `auroc`, `average_precision` and `precision_at`, bit for bit, from one stable sort (the
    audit's bootstrap calls this tens of thousands of times)."""
    s = np.asarray(suspicion, dtype=float)
    y = np.asarray(positive).astype(bool)
    n, n_pos = len(s), int(y.sum())
    order = np.argsort(-s, kind="stable")  # descending, ties in input order
    hits = y[order]
    nan = float("nan")
    if n_pos == 0:
        return {"auroc": nan, "ap": nan, "precision": nan}
    precision = np.cumsum(hits) / np.arange(1, n + 1)
    out = {"auroc": nan, "ap": float(precision[hits].mean()), "precision": float(hits[:n_pos].mean())}
    if n_pos < n:  # AUROC over mid-ranks (ascending, 1-based), summed in input order as `auroc` sums them
        desc = s[order]
        start = np.flatnonzero(np.r_[True, desc[1:] != desc[:-1]])  # first position of each tie group
        size = np.diff(np.r_[start, n])
        mid = (n - start) - (size - 1) / 2.0  # the group's highest ascending rank minus half its extra
        ranks = np.empty(n)
        ranks[order] = np.repeat(mid, size)
        u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
        out["auroc"] = float(u / (n_pos * (n - n_pos)))
    return out


def bootstrap_rankings(
    values: dict[str, list[np.ndarray]],
    planted: Sequence[np.ndarray],
    safety: Sequence[np.ndarray],
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """{(detector, population): {metric: [n_boot, repeats]}}: `ranking_metrics` on every bootstrap resample of
    every repeat (`_resample`: one resample per repeat and replicate, shared by every detector and population,
    so differences between detectors are paired). `detector_metrics` and `auroc_differences` read it."""
    pops = {pop: _masks(planted, safety, pop) for pop in ("all", "safety")}
    suspicion = {
        name: [-np.asarray(v, dtype=float) for v in per_repeat] for name, per_repeat in values.items()
    }
    labels = [np.asarray(pl).astype(bool) for pl in planted]
    table = {
        (name, pop): {m: np.full((n_boot, len(labels)), np.nan) for m in RANKING_METRICS}
        for name in values
        for pop in pops
    }
    for b in range(n_boot):
        for r in range(len(labels)):
            idx = _resample(len(labels[r]), seed, r, b)
            y = labels[r][idx]
            for pop, masks in pops.items():
                mk = masks[r][idx]
                for name in values:
                    got = ranking_metrics(suspicion[name][r][idx][mk], y[mk])
                    cell = table[name, pop]
                    for m in RANKING_METRICS:
                        cell[m][b, r] = got[m]
    return table


def detector_metrics(
    values: dict[str, np.ndarray],
    planted: Sequence[np.ndarray],
    safety: Sequence[np.ndarray],
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    table: dict | None = None,
) -> dict[str, dict]:
    """Each detector's AUROC, AP and precision at q on planted flips, over all pairs and over safety pairs
    alone, pooled over audit repeats (the mean of the repeats' values), with percentile bootstrap intervals
    (pairs resampled within each repeat). `values[name]` is a list of per-repeat arrays (higher = looks right);
    `planted` and `safety` are per-repeat masks; `table`: their `bootstrap_rankings`, if already computed."""
    repeats = len(planted)
    table = table if table is not None else bootstrap_rankings(values, planted, safety, n_boot, seed)
    alpha = (1 - confidence) / 2
    out: dict[str, dict] = {}
    for name, per_repeat in values.items():
        out[name] = {}
        for pop in ("all", "safety"):
            masks = _masks(planted, safety, pop)
            point = [
                ranking_metrics(-np.asarray(v)[mk], np.asarray(pl)[mk])
                for v, pl, mk in zip(per_repeat, planted, masks)
            ]
            boot = {m: np.array([_mean(row) for row in table[name, pop][m]]) for m in RANKING_METRICS}
            out[name][pop] = {
                m: Interval(
                    float(np.nanmean([p[m] for p in point])),
                    float(np.nanquantile(boot[m], alpha)),
                    float(np.nanquantile(boot[m], 1 - alpha)),
                    int(masks[0].sum()),
                    repeats,
                ).to_json()
                | {"positives": int(sum(np.asarray(pl)[mk].sum() for pl, mk in zip(planted, masks)))}
                for m in RANKING_METRICS
            }
    return out


def _resample(n: int, seed: int, repeat: int, b: int) -> np.ndarray:
    """Bootstrap resample b of a repeat's n pairs: the same for every detector and every statistic (paired)."""
    return np.random.default_rng([seed, repeat, b]).integers(0, n, n)


def _masks(planted: Sequence[np.ndarray], safety: Sequence[np.ndarray], pop: str) -> list[np.ndarray]:
    """Per repeat, the pairs of a population: "all", or "safety" pairs alone."""
    return [
        np.ones(len(p), dtype=bool) if pop == "all" else np.asarray(s, dtype=bool)
        for p, s in zip(planted, safety)
    ]


def _auroc_delta(
    a: np.ndarray, b: np.ndarray, y: np.ndarray, mask: np.ndarray, idx: np.ndarray | None
) -> float:
    """AUROC of suspicion -a minus that of -b on the pairs `idx` (all when None) within `mask`."""
    pick = np.arange(len(y)) if idx is None else idx
    mk = mask[pick]
    yy = y[pick][mk]
    return auroc(-a[pick][mk], yy) - auroc(-b[pick][mk], yy)


def _mean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN when there are none (a resample drew no planted pair)."""
    got = [v for v in values if not np.isnan(v)]
    return float(np.mean(got)) if got else float("nan")


def auroc_differences(
    values: dict[str, list[np.ndarray]],
    planted: Sequence[np.ndarray],
    safety: Sequence[np.ndarray],
    reference: str,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    table: dict | None = None,
) -> dict[str, dict]:
    """Each detector's AUROC minus the `reference` detector's, over all pairs and over safety pairs, mean over
    repeats, with a paired percentile bootstrap interval (both detectors on the same resamples); `table`: the
    detectors' `bootstrap_rankings`, if already computed."""
    alpha = (1 - confidence) / 2
    repeats = range(len(planted))
    table = table if table is not None else bootstrap_rankings(values, planted, safety, n_boot, seed)
    out: dict[str, dict] = {}
    for name in values:
        if name == reference:
            continue
        out[name] = {}
        for pop in ("all", "safety"):
            masks = _masks(planted, safety, pop)
            args = [
                (
                    np.asarray(values[name][r], dtype=float),
                    np.asarray(values[reference][r], dtype=float),
                    np.asarray(planted[r], dtype=bool),
                    masks[r],
                )
                for r in repeats
            ]
            point = _mean([_auroc_delta(*args[r], None) for r in repeats])
            mine, ref = table[name, pop]["auroc"], table[reference, pop]["auroc"]
            boot = np.array([_mean(list(a - b)) for a, b in zip(mine, ref)])
            out[name][pop] = {
                "diff": round(point, 6),
                "low": round(float(np.nanquantile(boot, alpha)), 6),
                "high": round(float(np.nanquantile(boot, 1 - alpha)), 6),
            }
    return out
