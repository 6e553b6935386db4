from __future__ import annotations

import numpy as np
import pytest
import torch

from safer_rm.activations import ActivationCache, CacheWriter
from safer_rm.curation.score import safer_scores
from safer_rm.features.config import FeaturesConfig
from safer_rm.features.contexts import build_contexts, top_activations
from safer_rm.features.salience import compute_salience, salience_from_sums
from safer_rm.features.selection import select_features
from safer_rm.features.types import Judgement


def identity_topk(k: int):
    """A TopK 'SAE' whose latents are the input coordinates: z = TopK(ReLU(x)). Makes hand computation easy."""

    def encode(x):
        top = torch.topk(torch.relu(x), k, dim=-1)
        return top.values, top.indices

    return encode


def hand_cache(tmp_path, rows, seqs=None, shard_vectors=3):
    """rows: (pair, side, position, vector); every (pair, side) sequence is given in `seqs` or is range(10)."""
    n_pairs = max(r[0] for r in rows) + 1
    w = CacheWriter(
        tmp_path / "c",
        {"layer": 1, "policy": "hand", "pairs": [f"p{i}" for i in range(n_pairs)], "d": len(rows[0][3])},
        shard_vectors=shard_vectors,
        dtype=torch.float32,
    )
    for p in range(n_pairs):
        for s in range(2):
            w.add_sequence(
                (seqs or {}).get((p, s), list(range(100 + 10 * (2 * p + s), 110 + 10 * (2 * p + s))))
            )
    for pair, side, pos, vec in rows:
        x = torch.tensor([vec], dtype=torch.float32)
        tok = (seqs or {}).get(
            (pair, side), list(range(100 + 10 * (2 * pair + side), 110 + 10 * (2 * pair + side)))
        )[pos]
        w.add(
            x,
            torch.zeros(1),
            torch.ones(1),
            torch.tensor([pair]),
            torch.tensor([side]),
            torch.tensor([pos]),
            torch.tensor([tok]),
        )
    w.close()
    return ActivationCache(tmp_path / "c")


ROWS = [  # 4 latents (coordinates), k = 2
    (0, 0, 1, [3.0, 1.0, 0.0, 0.0]),  # pair 0 chosen: latent0=3, latent1=1
    (0, 0, 4, [1.0, 0.0, 2.0, 0.0]),  # pair 0 chosen: latent0=1, latent2=2
    (0, 1, 2, [0.0, 0.0, 0.0, 4.0]),  # pair 0 rejected: latent3=4
    (1, 0, 3, [0.0, 2.0, 0.0, 0.0]),  # pair 1 chosen: latent1=2
    (1, 1, 5, [2.0, 0.0, 0.0, 1.0]),  # pair 1 rejected: latent0=2, latent3=1
    (1, 1, 6, [0.0, 0.0, 1.0, 1.0]),  # pair 1 rejected: latent2=1, latent3=1
]


def test_salience_matches_hand_computation(tmp_path):
    cache = hand_cache(tmp_path, ROWS)
    s = compute_salience(cache, identity_topk(2), 4, progress=False)
    C, R = np.array([4.0, 3.0, 2.0, 0.0]), np.array([2.0, 0.0, 1.0, 6.0])
    np.testing.assert_allclose(s.chosen_sum, C)
    np.testing.assert_allclose(s.rejected_sum, R)
    m = (C.sum() + R.sum()) / 8  # mean of all 2M values = 18 / 8
    np.testing.assert_allclose(s.salience, (C - R) / (C + R + 2 * m))
    assert list(s.chosen_count) == [2, 2, 1, 0] and list(s.rejected_count) == [1, 0, 1, 3]
    assert s.chosen_mean[0] == pytest.approx(2.0) and s.rejected_mean[3] == pytest.approx(2.0)
    assert list(s.ranking()[:2]) == [3, 1]  # |s3| = 6/(6+4.5) > |s1| = 3/(3+4.5)
    # per_position: each side's sum divided by its number of positions (chosen 3, rejected 3)
    pp = compute_salience(cache, identity_topk(2), 4, normalize="per_position", progress=False)
    np.testing.assert_allclose(pp.salience, salience_from_sums(C / 3, R / 3))
    # per_response: each response contributes its mean over its own positions
    pr = compute_salience(cache, identity_topk(2), 4, normalize="per_response", progress=False)
    Cr = np.array([(3 + 1) / 2, 1 / 2 + 2 / 1, 2 / 2, 0.0])
    Rr = np.array([2 / 2, 0.0, 1 / 2, 4 / 1 + (1 + 1) / 2])
    np.testing.assert_allclose(pr.salience, salience_from_sums(Cr, Rr))


def test_pair_score_matches_hand_computation(tmp_path):
    cache = hand_cache(tmp_path, ROWS)
    sc = safer_scores(cache, identity_topk(2), safe=[0, 1], unsafe=[3], progress=False)
    # pair 0: a(chosen) = mean(3+1, 1) = 2.5 ; a(rejected) = mean(-4) = -4 ; score 6.5
    # pair 1: a(chosen) = 2 ; a(rejected) = mean(2-1, 0-1) = 0 ; score 2
    np.testing.assert_allclose(sc.a_chosen, [2.5, 2.0])
    np.testing.assert_allclose(sc.a_rejected, [-4.0, 0.0])
    np.testing.assert_allclose(sc.score, [6.5, 2.0])
    np.testing.assert_allclose(sc.contributions.sum(1), sc.score)
    np.testing.assert_allclose(
        sc.contributions[0], [2.0, 0.5, 4.0]
    )  # latent0 (4/2), latent1 (1/2), latent3 (4)
    assert sc.top_features(0, 1) == [(3, 4.0)]
    assert sc.positions.tolist() == [[2, 1], [1, 2]]


def test_contexts_on_hand_made_cache(tmp_path, tiny_bert):
    from safer_rm.models import load_tokenizer

    tok = load_tokenizer(str(tiny_bert))
    words = "one two three four five six seven eight nine ten".split()
    ids = tok.convert_tokens_to_ids(words)
    seqs = {(p, s): ids for p in range(2) for s in range(2)}
    cache = hand_cache(tmp_path, ROWS, seqs=seqs)
    values, meta, counts = top_activations(cache, identity_topk(2), [0, 3], top_m=3, progress=False)
    assert values[0].tolist() == [3.0, 2.0, 1.0] and values[1].tolist() == [4.0, 1.0, 1.0]
    assert counts.tolist() == [3, 3]
    items, bad = build_contexts(
        cache,
        tok,
        [0, 3],
        values,
        meta,
        counts,
        FeaturesConfig(window=2, per_token=1, min_contexts=3, max_distinct_tokens=2),
    )
    first = items[0].contexts[0]  # latent 0's best: pair 0 chosen position 1 ("two") with activation 3
    assert (first.token, first.activation, first.left, first.right) == ("two", 3.0, "one", "three four")
    assert (first.pair_id, first.side, first.position) == ("p0", "chosen", 1)
    assert [c.token for c in items[0].contexts] == ["two", "six", "five"]  # grouped by token, best first
    assert items[1].n_distinct_tokens == 3 and bad == {
        0: "3 distinct tokens (> 2)",
        3: "3 distinct tokens (> 2)",
    }
    _, bad = build_contexts(cache, tok, [0, 3], values, meta, counts, FeaturesConfig(min_contexts=4))
    assert bad == {0: "only 3 activations (< 4)", 3: "only 3 activations (< 4)"}
    _, bad = build_contexts(cache, tok, [0, 3], values, meta, counts, FeaturesConfig(min_contexts=3))
    assert bad == {}


def test_selection_threshold_topn_and_sign():
    sal = np.array([0.5, -0.4, 0.3, -0.2, 0.1, 0.0])
    judg = {i: Judgement(i, s) for i, s in enumerate([5, 5, 4, 5, 5, 5])}
    sel = select_features(sal, range(6), judg, threshold=5, top_n=3, uninterpretable={4: "spread"})
    assert sel.safe == [0] and sel.unsafe == [1, 3]
    assert "judge score 4" in sel.reasons[2] and "uninterpretable" in sel.reasons[4]
    none = select_features(sal, range(6), None, top_n=3, use_judge=False)
    assert none.safe == [0, 2] and none.unsafe == [1]
