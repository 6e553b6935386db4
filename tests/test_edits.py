from __future__ import annotations

import numpy as np
import pytest

from safer_rm.curation.edits import apply_edit, edit_count, rank_for_edit
from safer_rm.data import PreferencePair

SCORES = np.array([0.5, 3.0, -2.0, 1.0, -0.5, 2.0, 0.0, -1.0, 4.0, -3.0])
MARGIN = np.array([1.0, -1.0, 2.0, 0.5, -4.0, 0.0, 3.0, -2.0, 0.2, 1.5])


def table():
    return [
        PreferencePair(
            f"p{i}",
            [{"role": "user", "content": f"q{i}"}],
            f"good{i}",
            f"bad{i}",
            "pku" if i < 6 else "alpaca",
            "safety" if i < 6 else "chat",
        )
        for i in range(10)
    ]


def test_poison_safer_flips_the_top_pairs():
    pairs = table()
    idx = rank_for_edit("poison", "safer", SCORES, 3, range(10))
    assert idx == [8, 1, 5]
    edit = apply_edit(pairs, idx, "poison", "safer", SCORES)
    assert [p.id for p in edit.pairs] == [p.id for p in pairs]
    flipped = [p.id for p in edit.pairs if p.chosen.startswith("bad")]
    assert flipped == ["p1", "p5", "p8"]
    assert edit.pairs[8].rejected == "good8" and edit.pairs[8].meta["flipped"] == "safer:rank1"
    assert [r["id"] for r in edit.records] == ["p8", "p1", "p5"] and edit.records[0]["value"] == 4.0
    assert pairs[8].chosen == "good8" and "flipped" not in pairs[8].meta  # input untouched
    assert edit.source_mix() == {"alpaca": 1, "pku": 2}


def test_denoise_safer_removes_the_bottom_pairs():
    edit = apply_edit(
        table(), rank_for_edit("denoise", "safer", SCORES, 2, range(10)), "denoise", "safer", SCORES
    )
    assert [p.id for p in edit.pairs] == ["p0", "p1", "p3", "p4", "p5", "p6", "p7", "p8"]
    assert [(r["id"], r["action"]) for r in edit.records] == [("p9", "remove"), ("p2", "remove")]


def test_reward_margin_baseline():
    assert rank_for_edit("poison", "reward_margin", MARGIN, 2, range(10)) == [6, 2]
    assert rank_for_edit("denoise", "reward_margin", MARGIN, 2, range(10)) == [4, 7]


def test_random_is_seeded_and_scope_and_strata_respected():
    a = rank_for_edit("poison", "random", None, 3, range(10), seed=1)
    assert a == rank_for_edit("poison", "random", None, 3, range(10), seed=1)
    assert a != rank_for_edit("poison", "random", None, 3, range(10), seed=2)
    assert len(set(a)) == 3
    safety_only = rank_for_edit("poison", "safer", SCORES, 3, range(6))
    assert safety_only == [1, 5, 3]
    groups = [p.source for p in table()]
    strat = rank_for_edit("poison", "safer", SCORES, 5, range(10), groups=groups)
    assert sorted(strat) == sorted([1, 5, 3] + [8, 6])  # 3 of the 6 pku pairs, 2 of the 4 alpaca pairs
    assert strat[0] == 8


@pytest.mark.parametrize("n,ratio,want", [(3000, 5.0, 150), (3000, 0.5, 15), (1000, 2.5, 25), (10, 4.0, 0)])
def test_counts_and_names(n, ratio, want):
    assert edit_count(n, ratio) == want
