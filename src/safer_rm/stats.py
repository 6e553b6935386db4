"""Paired statistics for comparing reward-model variants on the same evaluation pairs.

Two variants (say a poisoned and a clean reward model) are scored on the same preference pairs, so their
per-pair outcomes are paired: the difference in accuracy should be judged on per-pair differences, not on
two independent accuracies. Inputs are per-pair outcome arrays ``a`` and ``b`` of shape ``(n,)`` (one seed)
or ``(seeds, n)``, where row ``s`` of ``a`` is paired with row ``s`` of ``b`` (same seed index, same ``n``
pairs in the same order). Values are usually 0/1 correctness (bool is fine) but may be any finite reals.

Rules, all numpy-only and deterministic for a given ``seed`` (``np.random.default_rng(seed)``):

* Interval (percentile bootstrap, ``level`` default 0.95). One seed: resample pair indices with
  replacement, the same indices for ``a`` and ``b``; statistic ``mean(a[idx]) - mean(b[idx])``. Several
  seeds: hierarchical bootstrap; each replicate draws seeds with replacement, then for each drawn seed
  draws pair indices with replacement (the same for ``a`` and ``b`` within that seed); statistic = mean
  over drawn seeds of the per-seed mean difference. A constant input gives a zero-width interval.
* p-value (two-sided). 0/1 data: exact McNemar test on the discordant counts pooled over all seeds,
  which treats every (seed, pair) unit as independent (optimistic when seeds are strongly correlated).
  Other data: sign-flip permutation test on the flattened per-(seed, pair) differences.
* Inputs are validated: equal shapes, 1-D or 2-D, ``n >= 1``, finite values; otherwise ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_CHUNK_ELEMENTS = 1 << 22  # bootstrap / permutation work is done in blocks of about this many entries
_EXACT_SIGN_FLIP_MAX = 16  # enumerate all 2^m sign assignments up to this many non-zero differences
_EXACT_MCNEMAR_MAX = 20_000  # integer arithmetic up to this many discordant pairs, log-space above


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits)


def _round_sig(x: float, digits: int = 6) -> float:
    return float(f"{float(x):.{digits}g}")


@dataclass(frozen=True)
class Interval:
    """A statistic with its bootstrap interval; ``n`` pairs per seed, ``seeds`` seeds."""

    value: float
    low: float
    high: float
    n: int
    seeds: int

    def to_json(self) -> dict:
        return {
            "value": _round(self.value),
            "low": _round(self.low),
            "high": _round(self.high),
            "n": self.n,
            "seeds": self.seeds,
        }


@dataclass(frozen=True)
class PairedDiff:
    """Difference ``mean(a) - mean(b)`` (averaged over seeds) with its paired interval and p-value.

    ``seed_sd`` is the sample standard deviation (ddof=1) of the per-seed differences, None with one seed.
    """

    diff: float
    low: float
    high: float
    p: float
    test: str
    n: int
    seeds: int
    seed_sd: float | None

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_json(self) -> dict:
        """All fields plus ``excludes_zero``; diff, low, high and seed_sd rounded to 6 decimals, p to 6
        significant digits (so that a tiny p-value does not read as exactly 0)."""
        return {
            "diff": _round(self.diff),
            "low": _round(self.low),
            "high": _round(self.high),
            "p": _round_sig(self.p),
            "test": self.test,
            "n": self.n,
            "seeds": self.seeds,
            "seed_sd": _round(self.seed_sd),
            "excludes_zero": self.excludes_zero,
        }


def _as_outcomes(x: np.ndarray | list, name: str) -> np.ndarray:
    """Float array of shape (seeds, n) from a (n,) or (seeds, n) input, or ValueError."""
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)):
        raise ValueError(f"{name} must be numeric or bool, got dtype {arr.dtype}")
    arr = arr.astype(float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (seeds, n), got shape {np.shape(x)}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must hold at least one seed and one pair, got shape {np.shape(x)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return arr


def _check_boot_args(n_boot: int, level: float) -> None:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")


def _bootstrap_means(x: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of the mean over seeds of per-seed means of ``x`` (shape (seeds, n)).

    One seed: pair indices with replacement. Several seeds: seeds with replacement, then pair indices with
    replacement within each drawn seed. Since every seed has the same n, the mean of per-seed means of a
    replicate equals the mean over all its (drawn seed, drawn pair) entries."""
    n_seeds, n = x.shape
    rng = np.random.default_rng(seed)
    flat = x.ravel()
    out = np.empty(n_boot)
    chunk = max(1, _CHUNK_ELEMENTS // (n_seeds * n))
    index_type = np.int32 if n_seeds * n < 2**31 else np.int64
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(m, n_seeds, n), dtype=index_type)
        if n_seeds > 1:
            drawn = rng.integers(0, n_seeds, size=(m, n_seeds, 1), dtype=index_type)
            idx += drawn * n
        out[start : start + m] = flat[idx].reshape(m, -1).mean(axis=1)
    return out


def _percentile_interval(reps: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha])
    return float(low), float(high)


def mean_interval(x: np.ndarray | list, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of ``x`` (e.g. accuracy of one variant) with a percentile bootstrap interval.

    ``x`` has shape (n,) or (seeds, n); with several seeds the value is the mean of per-seed means and the
    bootstrap is hierarchical (seeds, then pairs within seed)."""
    _check_boot_args(n_boot, level)
    arr = _as_outcomes(x, "x")
    reps = _bootstrap_means(arr, int(n_boot), seed)
    low, high = _percentile_interval(reps, level)
    value = float(arr.mean())  # = mean of per-seed means (equal n), summed like the bootstrap replicates
    return Interval(value=value, low=low, high=high, n=arr.shape[1], seeds=arr.shape[0])


def _is_binary(x: np.ndarray) -> bool:
    return bool(((x == 0.0) | (x == 1.0)).all())


def paired_difference(
    a: np.ndarray | list, b: np.ndarray | list, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> PairedDiff:
    """Paired comparison of variants ``a`` and ``b`` scored on the same pairs (shape (n,) or (seeds, n)).

    ``diff`` is the mean over seeds of ``mean(a_s) - mean(b_s)``; ``low``/``high`` its percentile bootstrap
    interval (pairs resampled jointly for a and b; hierarchical over seeds when there are several). ``p``:
    for 0/1 data the exact McNemar test on discordant counts pooled over all seeds (pooling treats each
    (seed, pair) unit as independent); otherwise a sign-flip permutation test (``sign_flip_p`` with
    ``seed``) on the flattened per-(seed, pair) differences."""
    _check_boot_args(n_boot, level)
    arr_a = _as_outcomes(a, "a")
    arr_b = _as_outcomes(b, "b")
    if arr_a.shape != arr_b.shape:
        raise ValueError(f"a and b must have the same shape, got {np.shape(a)} and {np.shape(b)}")
    n_seeds, n = arr_a.shape
    d = arr_a - arr_b
    per_seed = d.mean(axis=1)
    reps = _bootstrap_means(d, int(n_boot), seed)
    low, high = _percentile_interval(reps, level)
    if _is_binary(arr_a) and _is_binary(arr_b):
        n_b = int(((arr_a == 1.0) & (arr_b == 0.0)).sum())
        n_c = int(((arr_a == 0.0) & (arr_b == 1.0)).sum())
        p, test = mcnemar_exact(n_b, n_c), "mcnemar-exact"
    else:
        p, test = sign_flip_p(d.ravel(), seed=seed), "sign-flip permutation"
    seed_sd = float(np.std(per_seed, ddof=1)) if n_seeds > 1 else None
    return PairedDiff(
        diff=float(d.mean()),  # = per_seed.mean() (equal n), summed like the bootstrap replicates
        low=low,
        high=high,
        p=float(p),
        test=test,
        n=n,
        seeds=n_seeds,
        seed_sd=seed_sd,
    )


def _binom_half_cdf_log(k: int, m: int) -> float:
    """log P(X <= k) for X ~ Binomial(m, 1/2), via log-gamma terms and a log-sum-exp."""
    i = np.arange(k + 1, dtype=float)
    log_terms = (
        math.lgamma(m + 1)
        - np.array([math.lgamma(v + 1) for v in i])
        - np.array([math.lgamma(m - v + 1) for v in i])
        - m * math.log(2.0)
    )
    top = float(log_terms.max())
    return top + math.log(float(np.exp(log_terms - top).sum()))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` (a right, b wrong) and ``c`` (a
    wrong, b right): ``min(1, 2 * P(X <= min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)``; 1.0 when
    ``b + c == 0``. Exact integer arithmetic up to 20,000 discordant pairs, log-space above."""
    if int(b) != b or int(c) != c or b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative integers, got b={b}, c={c}")
    b, c = int(b), int(c)
    m, k = b + c, min(b, c)
    if m == 0:
        return 1.0
    if 2 * k >= m:  # the smaller count is at the centre: P(X <= k) >= 1/2
        return 1.0
    if m <= _EXACT_MCNEMAR_MAX:
        term, total = 1, 1  # comb(m, 0)
        for i in range(k):
            term = term * (m - i) // (i + 1)  # comb(m, i + 1), exact
            total += term
        return min(1.0, total / (1 << (m - 1)))  # 2 * total / 2^m, correctly rounded big-int division
    return min(1.0, math.exp(math.log(2.0) + _binom_half_cdf_log(k, m)))


def sign_flip_p(d: np.ndarray | list, n_perm: int = 10000, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p-value for per-pair differences ``d`` (statistic ``|mean(d)|``).

    Zero differences are dropped first (flipping them changes nothing, so the p-value is the same). With
    ``m`` non-zero differences:

    * ``m <= 16``: exact enumeration of all ``2^m`` sign assignments, ``p = count / 2^m`` where ``count``
      includes the observed assignment (so ``d = [1, 1, 1]`` gives ``2 / 8``);
    * otherwise Monte Carlo with ``n_perm`` random sign vectors from ``np.random.default_rng(seed)``,
      ``p = (1 + count) / (1 + n_perm)`` (the observed assignment counted once).

    ``count`` is the number of assignments with ``|mean*| >= |mean|`` (up to a relative 1e-9 tolerance so
    that floating-point ties count as ties). All-zero ``d`` gives 1.0."""
    arr = np.asarray(d, dtype=float).ravel()
    if arr.size < 1:
        raise ValueError("d must hold at least one difference")
    if not np.isfinite(arr).all():
        raise ValueError("d contains non-finite values (NaN or inf)")
    if int(n_perm) < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    nz = arr[arr != 0.0]
    m = nz.size
    if m == 0:
        return 1.0
    observed = abs(float(nz.sum()))  # |sum| is |mean| times a constant: same ordering
    threshold = observed - 1e-9 * float(np.abs(nz).sum())
    if m <= _EXACT_SIGN_FLIP_MAX:
        codes = np.arange(1 << m, dtype=np.int64)[:, None]
        bits = (codes >> np.arange(m, dtype=np.int64)) & 1  # 1 = flip
        sums = nz.sum() - 2.0 * (bits.astype(float) @ nz)
        return float((np.abs(sums) >= threshold).sum() / (1 << m))
    rng = np.random.default_rng(seed)
    n_perm = int(n_perm)
    total = float(nz.sum())
    count = 0
    chunk = max(1, _CHUNK_ELEMENTS // m)
    n_bytes = (m + 7) // 8
    for start in range(0, n_perm, chunk):
        rows = min(chunk, n_perm - start)
        packed = rng.integers(0, 256, size=(rows, n_bytes), dtype=np.uint8)
        bits = np.unpackbits(packed, axis=1, count=m)  # 1 = flip, each with probability 1/2
        sums = total - 2.0 * (bits.astype(float) @ nz)
        count += int((np.abs(sums) >= threshold).sum())
    return (1 + count) / (1 + n_perm)
