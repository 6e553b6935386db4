"""The specificity filter (features.specific): keep candidates whose ablation moves safety margins at least
`specificity` times more than chat margins, tested best first until top_n are kept."""

from __future__ import annotations

import numpy as np
import pytest

from safer_rm.features.specificity import ratio, specific_candidates, specificity_pairs

from helpers import pairs_from, separable_rows

# a constructed reward: 4 safety pairs, then 4 chat pairs; zeroing a latent subtracts its row of effects
EFFECTS = {
    10: [0.4, 0.2, 0.3, 0.1] + [0.01, 0.0, 0.02, 0.01],  # safety-specific: ratio 25
    11: [0.2, 0.2, 0.2, 0.2] + [0.2, 0.2, 0.2, 0.2],  # moves both alike: ratio 1
    12: [0.0] * 4 + [0.3, 0.1, 0.2, 0.2],  # chat only: ratio 0
    13: [0.1, 0.1, -0.1, 0.1] + [0.0] * 4,  # safety only, both signs: ratio inf
    14: [0.0] * 8,  # inactive: undefined
    15: [0.3, 0.3, 0.3, 0.3] + [0.1, 0.1, 0.1, 0.1],  # ratio 3
}
BASE = np.linspace(-1, 1, 8)


def _margins(calls: list):
    def margins(latents):
        calls.append(list(latents))
        out = BASE.copy()
        for latent in latents:
            out -= np.array(EFFECTS[latent])
        return out

    return margins


def test_specificity_filter_on_a_constructed_case():
    calls: list = []
    spec = specific_candidates([11, 10, 12, 13, 14, 15], _margins(calls), 4, threshold=2.0, top_n=8)
    assert spec.kept == [10, 13, 15]
    assert spec.tested[10]["ratio"] == pytest.approx(0.25 / 0.01)
    assert spec.tested[11]["ratio"] == pytest.approx(1.0)
    assert spec.tested[12]["ratio"] == 0.0 and spec.tested[13]["ratio"] == float("inf")
    assert spec.tested[14]["ratio"] is None and "undefined" in spec.reasons[14]
    assert spec.tested[15]["safety"] == pytest.approx(0.3) and spec.tested[15]["chat"] == pytest.approx(0.1)
    assert set(spec.reasons) == {11, 12, 14} and "1.00 < 2" in spec.reasons[11]
    # the base once, then one pass per tested candidate
    assert calls == [[], [11], [10], [12], [13], [14], [15]]


def test_specificity_stops_once_top_n_are_kept_and_the_threshold_matters():
    calls: list = []
    spec = specific_candidates([10, 11, 13, 15], _margins(calls), 4, threshold=2.0, top_n=2)
    assert spec.kept == [10, 13] and 15 not in spec.tested  # never tested: two were found first
    assert len(calls) == 4
    loose = specific_candidates([11, 12, 15], _margins([]), 4, threshold=0.5, top_n=8)
    assert loose.kept == [11, 15]
    assert ratio(0.0, 0.0) is None and ratio(1.0, 0.0) == float("inf") and ratio(1.0, 2.0) == 0.5


def test_specificity_pairs_are_a_seeded_sample_of_each_kind():
    pairs = pairs_from(separable_rows(30))
    for p in pairs[20:]:
        p.kind = "chat"
    safety, chat = specificity_pairs(pairs, 8, seed=3)
    assert len(safety) == 8 and len(chat) == 8
    assert {p.kind for p in safety} == {"safety"} and {p.kind for p in chat} == {"chat"}
    assert [int(p.id) for p in safety] == sorted(int(p.id) for p in safety)
    again = specificity_pairs(pairs, 8, seed=3)
    assert [p.id for p in again[0]] == [p.id for p in safety]
    everything = specificity_pairs(pairs, None)
    assert len(everything[0]) == 20 and len(everything[1]) == 10
