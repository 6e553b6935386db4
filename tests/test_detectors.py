"""The detectors' pure parts: fold assignment, the SAE probe, rank combination and the audit metrics."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import pairs_from, separable_rows


def _pairs_with_repeated_prompts(n: int):
    from safer_rm.data.records import user_prompt

    pairs = pairs_from(separable_rows(n))
    for i, p in enumerate(pairs):  # every prompt used by three pairs, as AlpacaEval repeats its prompts
        p.prompt = user_prompt(f"prompt {i // 3}")
    return pairs


@pytest.mark.parametrize("k", [2, 3, 5])
def test_folds_are_disjoint_cover_every_pair_and_keep_prompts_together(k):
    from safer_rm.curation.detectors import assign_folds

    pairs = _pairs_with_repeated_prompts(61)
    fold = assign_folds(pairs, k, seed=3)
    assert fold.shape == (61,) and set(fold.tolist()) == set(range(k))  # every pair has exactly one fold
    sizes = np.bincount(fold)
    assert sizes.sum() == 61 and sizes.max() - sizes.min() <= 3  # balanced to within one prompt group
    by_prompt: dict[str, set[int]] = {}
    for p, f in zip(pairs, fold):
        by_prompt.setdefault(p.prompt_key(), set()).add(int(f))
    assert all(len(v) == 1 for v in by_prompt.values())
    assert (assign_folds(pairs, k, seed=3) == fold).all()
    assert not (assign_folds(pairs, k, seed=4) == fold).all()


def _planted_features(n=400, d=12, flip=0.1, seed=0):
    """x = f(chosen) - f(rejected) with a true direction; `flip` of the pairs have their sides swapped."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    x = rng.normal(size=(n, d))
    x *= np.sign(x @ w)[:, None]  # every true pair prefers the side the direction prefers
    planted = np.zeros(n, dtype=bool)
    planted[rng.choice(n, int(flip * n), replace=False)] = True
    x[planted] *= -1
    return x, planted


def test_probe_is_side_symmetric_and_finds_swapped_pairs_out_of_fold():
    from safer_rm.curation.detectors import fit_probe, probe_oof
    from safer_rm.metrics import auroc

    x, planted = _planted_features()
    w = fit_probe(x)
    assert np.allclose((-x) @ w, -(x @ w))  # no intercept: swapping sides flips the margin
    fold = np.arange(len(x)) % 4
    oof = probe_oof(x, fold)
    assert auroc(-oof, planted) > 0.95
    # the held-out fold never shapes its own score: changing it leaves the others' fits alone
    x2 = x.copy()
    x2[fold == 0] = 0
    assert np.allclose(probe_oof(x2, fold)[fold == 0], 0)


def test_rank_combination_and_average_precision():
    from safer_rm.curation.detectors import average_precision, combine_ranks, percentile_ranks

    assert percentile_ranks(np.array([3.0, 1.0, 2.0, 2.0])).tolist() == [1.0, 0.25, 0.625, 0.625]
    a, b = np.array([1.0, 2.0, 3.0]), np.array([30.0, 10.0, 20.0])
    assert np.allclose(combine_ranks(a, b), [(1 / 3 + 1) / 2, (2 / 3 + 1 / 3) / 2, (1 + 2 / 3) / 2])
    # positives at ranks 1 and 3 of 4: AP = (1/1 + 2/3) / 2
    assert average_precision(np.array([4.0, 3.0, 2.0, 1.0]), np.array([1, 0, 1, 0])) == pytest.approx(5 / 6)
    assert np.isnan(average_precision(np.array([1.0, 2.0]), np.array([0, 0])))


def test_detector_metrics_pool_repeats_with_intervals_over_all_and_safety_pairs():
    from safer_rm.curation.detectors import detector_metrics

    rng = np.random.default_rng(0)
    planted, safety, good, noise = [], [], [], []
    for _ in range(3):
        pl = np.zeros(300, dtype=bool)
        pl[rng.choice(300, 15, replace=False)] = True
        sa = rng.random(300) < 0.6
        planted.append(pl), safety.append(sa)
        good.append(np.where(pl, -1.0, 1.0) + rng.normal(0, 0.5, 300))
        noise.append(rng.normal(size=300))
    out = detector_metrics({"good": good, "noise": noise}, planted, safety, n_boot=200)
    g = out["good"]["all"]["auroc"]
    assert g["value"] > 0.95 and g["low"] <= g["value"] <= g["high"] and g["seeds"] == 3 and g["n"] == 300
    assert out["good"]["all"]["auroc"]["positives"] == 45
    assert out["good"]["safety"]["auroc"]["n"] == int(safety[0].sum())
    assert out["good"]["safety"]["auroc"]["positives"] == sum(
        int((p & s).sum()) for p, s in zip(planted, safety)
    )
    n = out["noise"]["all"]
    assert n["auroc"]["low"] < 0.5 < n["auroc"]["high"] and n["precision"]["value"] < 0.3
    assert set(n) == {"auroc", "ap", "precision"}


def test_planting_among_safety_pairs_only():
    from safer_rm.experiment.audit import planted_indices

    pairs = pairs_from(separable_rows(100))
    for p in pairs[50:]:
        p.kind = "chat"
    idx = planted_indices(pairs, 10.0, seed=1, scope="safety")
    assert len(idx) == 10 and all(pairs[i].kind == "safety" for i in idx)
    assert len(planted_indices(pairs, 10.0, seed=1)) == 10
    assert planted_indices(pairs, 10.0, seed=1, scope="safety") == idx


def test_paired_auroc_differences_against_a_reference_detector():
    from safer_rm.curation.detectors import auroc_differences
    from safer_rm.metrics import auroc

    rng = np.random.default_rng(2)
    planted = [rng.random(300) < 0.08 for _ in range(2)]
    safety = [rng.random(300) < 0.5 for _ in range(2)]
    good = [np.where(p, -1.0, 1.0) + rng.normal(0, 0.7, 300) for p in planted]
    noise = [rng.normal(size=300) for _ in planted]
    out = auroc_differences(
        {"good": good, "noise": noise, "same": noise}, planted, safety, "noise", n_boot=200
    )
    assert set(out) == {"good", "same"} and set(out["good"]) == {"all", "safety"}
    want = np.mean([auroc(-g, p) - auroc(-n, p) for g, n, p in zip(good, noise, planted)])
    d = out["good"]["all"]
    assert d["diff"] == pytest.approx(want, abs=1e-6) and 0 < d["low"] <= d["diff"] <= d["high"]
    assert out["same"]["safety"] == {"diff": 0.0, "low": 0.0, "high": 0.0}  # paired: identical detectors


def test_ranking_metrics_equal_the_three_metrics_bit_for_bit_with_ties():
    """One stable sort gives what auroc, average_precision and precision_at give separately (the audit's
    bootstrap calls it tens of thousands of times), ties and one-class samples included."""
    import numpy as np

    from safer_rm.curation.detectors import average_precision, ranking_metrics
    from safer_rm.metrics import auroc, precision_at

    rng = np.random.default_rng(0)
    for trial in range(400):
        n = int(rng.integers(1, 60))
        scores = rng.integers(0, 5, n).astype(float) if trial % 2 else rng.normal(size=n)
        positive = rng.random(n) < (0.3 if trial % 3 else 1.0)  # every third: all positive, no AUROC
        n_pos = int(positive.sum())
        want = {
            "auroc": auroc(scores, positive),
            "ap": average_precision(scores, positive),
            "precision": precision_at(scores, positive, n_pos),
        }
        got = ranking_metrics(scores, positive)
        for key, value in want.items():
            assert (np.isnan(value) and np.isnan(got[key])) or got[key] == value, (key, scores, positive)
