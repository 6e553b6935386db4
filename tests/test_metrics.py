from __future__ import annotations

import numpy as np

from safer_rm.metrics import auroc, precision_at


def test_precision_at_ranks_by_score_with_ties_in_input_order():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.2])
    positive = np.array([True, False, True, True, False])
    assert precision_at(scores, positive, 1) == 0.0  # the tie at 0.9 keeps input order: index 1 first
    assert precision_at(scores, positive, 2) == 0.5
    assert precision_at(scores, positive, 3) == 2 / 3
    assert precision_at(scores, positive, 5) == 0.6
    assert precision_at(scores, positive, 9) == 0.6  # n beyond the list: all of it
    assert np.isnan(precision_at(scores, positive, 0))


def test_auroc_and_precision_agree_on_a_perfect_ranking():
    scores, positive = [4, 3, 2, 1], [1, 1, 0, 0]
    assert auroc(scores, positive) == 1.0 and precision_at(scores, positive, 2) == 1.0
