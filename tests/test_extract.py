from __future__ import annotations

import numpy as np
import pytest
import torch

from safer_rm.activations import ActivationCache, extract_pairs, standardize
from safer_rm.models.prefix_cache import PrefixCache
from safer_rm.reward.scoring import Scorer

from helpers import eval_rm, pairs_from, separable_rows


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_extracted_vectors_match_hidden_states(fixture, request, tmp_path):
    path = request.getfixturevalue(fixture)
    tok, model, renderer = eval_rm(path)
    pairs = pairs_from(separable_rows(10))
    index = extract_pairs(
        Scorer(model, renderer, batch_size=4, progress=False),
        pairs,
        1,
        "all",
        tmp_path / "acts",
        shard_vectors=100,
        dtype="float32",
    )
    cache = ActivationCache(tmp_path / "acts")
    chosen, rejected = renderer.encode_pairs(pairs)
    lengths = [len(e.input_ids) for pair in zip(chosen, rejected) for e in pair]
    assert len(cache) == sum(lengths) == index["vectors"] and len(cache.index["shards"]) > 1
    assert cache.pairs == [p.id for p in pairs] and cache.d == model.config.hidden_size
    seen = set()
    for batch in cache.iter_batches(64):
        for i in range(batch.x.shape[0]):
            p, s, pos = int(batch.pair[i]), int(batch.side[i]), int(batch.position[i])
            seen.add((p, s, pos))
            seq = cache.sequence(p, s)
            assert int(batch.token[i]) == seq[pos]
    assert len(seen) == len(cache)
    # spot-check values against output_hidden_states of the unpadded sequence
    batch = next(cache.iter_batches(8))
    for i in range(3):
        p, s, pos = int(batch.pair[i]), int(batch.side[i]), int(batch.position[i])
        ids = torch.as_tensor(cache.sequence(p, s), dtype=torch.long)[None]
        with torch.no_grad():
            h = model(input_ids=ids, output_hidden_states=True).hidden_states[1][0, pos]
        x, mean, std = standardize(h[None])
        np.testing.assert_allclose(batch.x[i].numpy(), x[0].numpy(), atol=1e-4)
        assert batch.mean[i] == pytest.approx(float(mean[0]), abs=1e-4)


def test_shuffled_batches_cover_every_vector_once(tiny_bert, tmp_path):
    _tok, model, renderer = eval_rm(tiny_bert)
    extract_pairs(
        Scorer(model, renderer, batch_size=32, progress=False),
        pairs_from(separable_rows(12)),
        2,
        "response",
        tmp_path / "a",
        shard_vectors=64,
        dtype="float32",
    )
    cache = ActivationCache(tmp_path / "a")
    ordered = torch.cat(list(cache.batches(50)))
    shuffled = torch.cat(list(cache.batches(50, shuffle=True, seed=3, buffer_shards=2)))
    assert ordered.shape == shuffled.shape == (len(cache), cache.d)
    assert not torch.equal(ordered, shuffled)
    key = lambda t: sorted(map(tuple, t.numpy().round(4).tolist()))  # noqa: E731
    assert key(ordered) == key(shuffled)
    again = torch.cat(list(cache.batches(50, shuffle=True, seed=3, buffer_shards=2)))
    assert torch.equal(again, shuffled)


def test_extraction_over_prefix_cache_matches_full_model(tiny_llama, tmp_path):
    tok, model, renderer = eval_rm(tiny_llama)
    pairs = pairs_from(separable_rows(6))
    extract_pairs(
        Scorer(model, renderer, batch_size=32, progress=False),
        pairs,
        2,
        "sentence_end",
        tmp_path / "full",
        dtype="float32",
    )
    prefix = PrefixCache(1, "base", tmp_path / "prefix")
    extract_pairs(
        Scorer(model, renderer, batch_size=32, prefix=prefix, progress=False),
        pairs,
        2,
        "sentence_end",
        tmp_path / "cached",
        dtype="float32",
    )
    a, b = ActivationCache(tmp_path / "full"), ActivationCache(tmp_path / "cached")
    xa, xb = torch.cat(list(a.batches(1000))), torch.cat(list(b.batches(1000)))
    assert xa.shape == xb.shape and len(prefix) == 12
    np.testing.assert_allclose(xa.numpy(), xb.numpy(), atol=5e-2)  # prefix states are bf16


def test_incomplete_cache_is_refused(tmp_path):
    from safer_rm.errors import StageError

    (tmp_path / "acts").mkdir()
    with pytest.raises(StageError, match="index.json missing"):
        ActivationCache(tmp_path / "acts")


def _part(folder, batches: dict[int, int], d: int = 4):
    """A rank's extraction part: `batches` maps batch number -> vectors kept (0: the batch kept none)."""
    from safer_rm.activations.cache import CacheWriter

    w = CacheWriter(
        folder,
        {"layer": 1, "policy": "all", "pairs": [], "d": d, "tokens": 0},
        shard_vectors=3,
        dtype=torch.float32,
        with_batch=True,
    )
    for b, n in batches.items():
        if n:
            x = torch.full((n, d), float(b))
            w.add(
                x,
                torch.zeros(n),
                torch.ones(n),
                torch.full((n,), b),
                torch.zeros(n),
                torch.arange(n),
                torch.arange(n),
                batch=b,
            )
    w.close(tokens=False)


def test_merge_of_rank_parts_skips_batches_without_kept_positions(tmp_path, monkeypatch):
    """Two ranks' parts (rank 0: batches 0, 2, 4; rank 1: 1, 3), batches 2 and 3 kept nothing: the merged
    cache holds the other batches in global order."""
    from safer_rm import distributed
    from safer_rm.activations.extract import _merge_ranks
    from safer_rm.io import read_json

    _part(tmp_path / ".rank-0", {0: 2, 2: 0, 4: 3})
    _part(tmp_path / ".rank-1", {1: 1, 3: 0})
    monkeypatch.setattr(distributed, "world", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 0)
    monkeypatch.setattr(distributed, "is_main", lambda: True)
    monkeypatch.setattr(distributed, "barrier", lambda: None)
    monkeypatch.setattr(
        distributed,
        "gather_objects",
        lambda _v: [read_json(tmp_path / f".rank-{r}" / "index.json") for r in range(2)],
    )
    index = _merge_ranks(
        tmp_path, {"layer": 1, "policy": "all", "pairs": []}, [], 5, 4, torch.float32, {"d": 4, "tokens": 0}
    )
    assert index["vectors"] == 6
    x = torch.cat([s["x"] for s in ActivationCache(tmp_path).iter_shards()])
    assert x[:, 0].tolist() == [0, 0, 1, 4, 4, 4]
    assert not list(tmp_path.glob(".rank-*"))


def test_a_failed_shard_write_surfaces_and_leaves_no_index(tmp_path, monkeypatch):
    from safer_rm.activations import cache as cache_mod

    def broken(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(cache_mod, "save_file", broken)
    w = cache_mod.CacheWriter(tmp_path / "c", {"layer": 1}, shard_vectors=2, dtype=torch.float32)
    with pytest.raises(OSError, match="disk full"):
        for _ in range(3):
            w.add(
                torch.zeros(2, 4),
                torch.zeros(2),
                torch.ones(2),
                torch.zeros(2),
                torch.zeros(2),
                torch.arange(2),
                torch.arange(2),
            )
        w.close()
    assert not (tmp_path / "c" / "index.json").exists()


def test_standardize_is_per_vector_with_the_sample_std():
    x = torch.randn(50, 16, dtype=torch.float64) * 3 + 1
    z, mean, std = standardize(x.clone())
    assert torch.allclose(mean, x.mean(-1)) and torch.allclose(std, x.std(-1))  # unbiased, as torch.std
    assert torch.allclose(z, (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-6))
