from __future__ import annotations

import numpy as np
import pytest
import torch

from safer_rm.activations import ActivationCache, extract_pairs, standardize
from safer_rm.models import Renderer, load_reward_model, load_tokenizer
from safer_rm.models.prefix_cache import PrefixCache
from test_reward import pairs_from

from conftest import separable_rows


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_extracted_vectors_match_hidden_states(fixture, request, tmp_path):
    path = request.getfixturevalue(fixture)
    tok = load_tokenizer(str(path))
    model = load_reward_model(str(path), tok).eval()
    renderer = Renderer(tok, 64)
    pairs = pairs_from(separable_rows(10))
    index = extract_pairs(model, renderer, pairs, 1, "all", tmp_path / "acts", shard_vectors=100, batch_size=4,
                          dtype="float32", progress=False)
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
    tok = load_tokenizer(str(tiny_bert))
    model = load_reward_model(str(tiny_bert), tok).eval()
    extract_pairs(model, Renderer(tok, 64), pairs_from(separable_rows(12)), 2, "response", tmp_path / "a",
                  shard_vectors=64, dtype="float32", progress=False)
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
    tok = load_tokenizer(str(tiny_llama))
    model = load_reward_model(str(tiny_llama), tok).eval()
    renderer = Renderer(tok, 64)
    pairs = pairs_from(separable_rows(6))
    extract_pairs(model, renderer, pairs, 2, "sentence_end", tmp_path / "full", dtype="float32", progress=False)
    prefix = PrefixCache(1, "base", tmp_path / "prefix")
    extract_pairs(model, renderer, pairs, 2, "sentence_end", tmp_path / "cached", dtype="float32", prefix=prefix,
                  progress=False)
    a, b = ActivationCache(tmp_path / "full"), ActivationCache(tmp_path / "cached")
    xa, xb = torch.cat(list(a.batches(1000))), torch.cat(list(b.batches(1000)))
    assert xa.shape == xb.shape and len(prefix) == 12
    np.testing.assert_allclose(xa.numpy(), xb.numpy(), atol=5e-2)  # prefix states are bf16


def test_incomplete_cache_is_refused(tmp_path):
    from safer_rm.errors import StageError

    (tmp_path / "acts").mkdir()
    with pytest.raises(StageError, match="index.json missing"):
        ActivationCache(tmp_path / "acts")
