from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from safer_rm.stats import (
    Interval,
    PairedDiff,
    mcnemar_exact,
    mean_interval,
    paired_difference,
    sign_flip_p,
)

# --- mcnemar_exact ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (0, 5, 2 * (1 / 32)),  # only the all-one-way outcome: 2 * 1/2^5
        (5, 0, 2 * (1 / 32)),  # symmetric in b and c
        (3, 3, 1.0),
        (1, 9, 2 * (1 + 10) / 1024),  # 2 * (C(10,0) + C(10,1)) / 2^10
        (1, 8, 2 * (1 + 9) / 512),  # 2 * (C(9,0) + C(9,1)) / 2^9
        (2, 8, 2 * (1 + 10 + 45) / 1024),
        (0, 1, 1.0),  # 2 * 1/2 = 1
        (0, 0, 1.0),  # no discordant pairs
    ],
)
def test_mcnemar_exact_hand_cases(b: int, c: int, expected: float):
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("b", "c"),
    [(b, c) for b, c in itertools.product([0, 1, 2, 7, 20, 55], [0, 3, 8, 21, 60]) if b + c > 0]
    + [(4000, 4200), (4200, 4000), (4000, 4000), (480, 560), (9000, 9400), (15_000, 16_000), (100, 9900)],
)
def test_mcnemar_exact_matches_scipy_binomtest(b: int, c: int):
    expected = sps.binomtest(min(b, c), b + c, 0.5).pvalue
    got = mcnemar_exact(b, c)
    if expected < 1e-300:
        assert got < 1e-290
    else:
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_exact_rejects_bad_counts():
    with pytest.raises(ValueError, match="non-negative integers"):
        mcnemar_exact(-1, 3)
    with pytest.raises(ValueError, match="non-negative integers"):
        mcnemar_exact(1.5, 3)


# --- sign_flip_p -----------------------------------------------------------------------------------------


def test_sign_flip_exact_hand_cases():
    # [1,1,1]: of the 8 sign assignments only +++ and --- reach |sum| = 3 -> 2/8
    assert sign_flip_p([1, 1, 1]) == 2 / 8
    # [1,1,1,-1]: sums are +-4 (2 ways), +-2 (8 ways), 0 (6 ways); |sum| >= 2 in 10 of 16
    assert sign_flip_p([1, 1, 1, -1]) == 10 / 16
    # [3,1]: sums 4, 2, -2, -4 -> only +3+1 and -3-1 reach |sum| = 4
    assert sign_flip_p([3.0, 1.0]) == 2 / 4
    # zeros are dropped: same as [1,1,1]
    assert sign_flip_p([1, 0, 1, 0, 1]) == 2 / 8
    assert sign_flip_p([0.0, 0.0]) == 1.0


def test_sign_flip_exact_counts_floating_point_ties():
    # 0.1 + 0.2 vs 0.3: the flipped assignment +0.1 +0.2 -0.3 sums to ~5e-17, the observed |sum| is ~0;
    # every assignment must count, so p = 1
    assert sign_flip_p([0.1, 0.2, -0.3]) == 1.0


def _scipy_paired_p(d: np.ndarray, n_resamples: float, seed: int) -> float:
    def statistic(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        return np.mean(x - y, axis=axis)

    res = sps.permutation_test(
        (d, np.zeros_like(d)),
        statistic,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(res.pvalue)


def test_sign_flip_exact_matches_scipy_exact():
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, size=12)
    assert sign_flip_p(d) == pytest.approx(_scipy_paired_p(d, np.inf, 0), rel=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.15, 0.3])
def test_sign_flip_monte_carlo_agrees_with_scipy(shift: float):
    rng = np.random.default_rng(11)
    d = rng.normal(shift, 1.0, size=60)
    got = sign_flip_p(d, n_perm=50_000, seed=1)
    expected = _scipy_paired_p(d, 50_000, 2)
    assert abs(got - expected) < 0.01, (got, expected)


def test_sign_flip_monte_carlo_convention_and_determinism():
    d = np.ones(40)  # no random assignment reaches |sum| = 40 in practice: p = (1 + 0) / (1 + n_perm)
    assert sign_flip_p(d, n_perm=999) == pytest.approx(1 / 1000)
    rng = np.random.default_rng(5)
    d = rng.normal(0.1, 1.0, size=200)
    assert sign_flip_p(d, seed=4) == sign_flip_p(d, seed=4)


def test_sign_flip_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        sign_flip_p([])
    with pytest.raises(ValueError, match="non-finite"):
        sign_flip_p([1.0, np.nan])
    with pytest.raises(ValueError, match="n_perm"):
        sign_flip_p([1.0] * 20, n_perm=0)


# --- paired_difference -----------------------------------------------------------------------------------


def test_paired_difference_hand_checkable_diff():
    res = paired_difference([1, 1, 0, 0], [1, 0, 0, 0])
    assert isinstance(res, PairedDiff)
    assert res.diff == 0.25
    assert res.test == "mcnemar-exact"
    assert res.p == 1.0  # one discordant pair: 2 * 1/2
    assert (res.n, res.seeds, res.seed_sd) == (4, 1, None)
    assert res.low <= 0.25 <= res.high


def test_paired_difference_identical_inputs():
    rng = np.random.default_rng(0)
    a = rng.random(500) < 0.7
    res = paired_difference(a, a.copy())
    assert (res.diff, res.low, res.high, res.p) == (0.0, 0.0, 0.0, 1.0)
    assert not res.excludes_zero
    real = rng.normal(size=(3, 200))
    res = paired_difference(real, real.copy())
    assert (res.diff, res.low, res.high, res.p, res.seed_sd) == (0.0, 0.0, 0.0, 1.0, 0.0)
    assert res.test == "sign-flip permutation"


def test_paired_difference_clearly_better_model():
    rng = np.random.default_rng(1)
    a = rng.random(1000) < 0.9
    b = rng.random(1000) < 0.5
    res = paired_difference(a, b)
    assert res.diff == pytest.approx(a.mean() - b.mean())
    assert res.excludes_zero and res.low > 0.3
    assert res.p < 1e-6
    n_b, n_c = int((a & ~b).sum()), int((~a & b).sum())
    assert res.p == mcnemar_exact(n_b, n_c)
    flipped = paired_difference(b, a)
    assert flipped.diff == -res.diff and flipped.p == res.p and flipped.high < 0


def test_paired_difference_interval_coverage_under_the_null():
    rng = np.random.default_rng(2024)
    covered = 0
    repeats = 200
    for r in range(repeats):
        a = rng.random(300) < 0.7
        b = rng.random(300) < 0.7
        res = paired_difference(a, b, n_boot=500, seed=r)
        covered += res.low <= 0.0 <= res.high
    assert 0.88 <= covered / repeats <= 0.99, covered / repeats


def test_paired_difference_real_values_use_sign_flip():
    rng = np.random.default_rng(7)
    a = rng.normal(0.5, 1.0, size=300)
    b = a - 0.2 + rng.normal(0, 0.3, size=300)
    res = paired_difference(a, b, seed=3)
    assert res.test == "sign-flip permutation"
    assert res.diff == pytest.approx(float(np.mean(a - b)))
    assert res.p == sign_flip_p(a - b, seed=3)
    assert res.excludes_zero and res.p < 0.001


def test_paired_difference_several_seeds():
    rng = np.random.default_rng(9)
    rates = [(0.9, 0.5), (0.5, 0.9), (0.7, 0.7)]  # seeds disagree strongly on the sign of the difference
    a = np.stack([rng.random(400) < ra for ra, _ in rates])
    b = np.stack([rng.random(400) < rb for _, rb in rates])
    res = paired_difference(a, b)
    per_seed = a.mean(axis=1) - b.mean(axis=1)
    assert res.diff == pytest.approx(per_seed.mean())
    assert res.seed_sd == pytest.approx(np.std(per_seed, ddof=1))
    assert (res.n, res.seeds) == (400, 3)
    # p pools the discordant counts over all seeds
    assert res.p == mcnemar_exact(int((a & ~b).sum()), int((~a & b).sum()))
    pooled = paired_difference(a.ravel(), b.ravel())
    assert pooled.diff == pytest.approx(res.diff)
    assert res.high - res.low > 3 * (pooled.high - pooled.low)
    assert not res.excludes_zero


def test_paired_difference_hierarchical_matches_pooled_when_seeds_agree():
    rng = np.random.default_rng(10)
    a = rng.random((4, 500)) < 0.8
    b = rng.random((4, 500)) < 0.6
    hier = paired_difference(a, b)
    pooled = paired_difference(a.ravel(), b.ravel())
    ratio = (hier.high - hier.low) / (pooled.high - pooled.low)
    assert 0.6 < ratio < 1.6


def test_paired_difference_deterministic_and_level():
    rng = np.random.default_rng(12)
    a = rng.random(800) < 0.75
    b = rng.random(800) < 0.7
    assert paired_difference(a, b, seed=5) == paired_difference(a, b, seed=5)
    wide = paired_difference(a, b, level=0.99)
    narrow = paired_difference(a, b, level=0.8)
    assert wide.low < narrow.low and wide.high > narrow.high


def test_paired_difference_to_json():
    res = PairedDiff(
        diff=0.123456789,
        low=0.01,
        high=0.2,
        p=1.23456789e-12,
        test="mcnemar-exact",
        n=10,
        seeds=2,
        seed_sd=0.0333333333,
    )
    out = res.to_json()
    assert out == {
        "diff": 0.123457,
        "low": 0.01,
        "high": 0.2,
        "p": 1.23457e-12,
        "test": "mcnemar-exact",
        "n": 10,
        "seeds": 2,
        "seed_sd": 0.033333,
        "excludes_zero": True,
    }
    single = paired_difference([1, 0, 1, 1], [0, 0, 1, 1]).to_json()
    assert single["seed_sd"] is None and single["excludes_zero"] is False


# --- mean_interval ---------------------------------------------------------------------------------------


def test_mean_interval_one_seed():
    rng = np.random.default_rng(13)
    x = rng.random(1000) < 0.8
    iv = mean_interval(x)
    assert isinstance(iv, Interval)
    assert iv.value == pytest.approx(x.mean())
    assert iv.low < iv.value < iv.high
    assert (iv.n, iv.seeds) == (1000, 1)
    half = 1.96 * math.sqrt(x.mean() * (1 - x.mean()) / 1000)  # normal approximation of the width
    assert iv.high - iv.low == pytest.approx(2 * half, rel=0.15)


def test_mean_interval_several_seeds_and_constant():
    rng = np.random.default_rng(14)
    x = rng.random((3, 200)) < np.array([[0.6], [0.7], [0.8]])
    iv = mean_interval(x)
    assert iv.value == pytest.approx(x.mean(axis=1).mean())
    assert iv.low < iv.value < iv.high
    assert (iv.n, iv.seeds) == (200, 3)
    const = mean_interval(np.full((2, 50), 0.3))
    assert const.low == const.value == const.high
    for shape in [(7,), (3, 333), (1, 2500)]:
        c = mean_interval(np.full(shape, 0.7))
        assert c.low == c.value == c.high
        res = paired_difference(np.full(shape, 0.9), np.full(shape, 0.2))
        assert res.low == res.diff == res.high
    assert const.to_json() == {"value": 0.3, "low": 0.3, "high": 0.3, "n": 50, "seeds": 2}


# --- bad input -------------------------------------------------------------------------------------------


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="same shape"):
        paired_difference([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="same shape"):
        paired_difference(np.ones((2, 5)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="at least one"):
        paired_difference([], [])
    with pytest.raises(ValueError, match="at least one"):
        paired_difference(np.ones((0, 5)), np.ones((0, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        paired_difference([1.0, np.nan], [1.0, 0.0])
    with pytest.raises(ValueError, match="non-finite"):
        paired_difference([1.0, 0.0], [np.inf, 0.0])
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(seeds, n\)"):
        paired_difference(np.ones((2, 2, 2)), np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="numeric or bool"):
        paired_difference(["x", "y"], ["x", "y"])
    with pytest.raises(ValueError, match="n_boot"):
        paired_difference([1, 0], [0, 1], n_boot=0)
    with pytest.raises(ValueError, match="level"):
        paired_difference([1, 0], [0, 1], level=95)
    with pytest.raises(ValueError, match="at least one"):
        mean_interval([])
    with pytest.raises(ValueError, match="non-finite"):
        mean_interval([0.5, np.nan])
