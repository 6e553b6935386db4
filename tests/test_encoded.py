"""`encoded_batches` (a cache's vectors encoded by a real SAE, batch by batch) and the three streamed passes
built on it (salience, top contexts, pair scores), checked against one dense encoding of the whole cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from safer_rm.activations import ActivationCache, CacheWriter
from safer_rm.curation.score import safer_scores
from safer_rm.features.contexts import top_activations
from safer_rm.features.salience import compute_salience
from safer_rm.sae import SAEConfig, TopKSAE
from safer_rm.sae.encoded import LatentColumns, encoded_batches

N_PAIRS, D, LATENTS = 7, 16, 48


def random_cache(tmp_path) -> ActivationCache:
    """Shards of about 40 vectors (41, 40, 41, 27); 3 to 14 kept positions per response, random vectors."""
    g = torch.Generator().manual_seed(0)
    meta = {"layer": 1, "policy": "x", "pairs": [f"p{i}" for i in range(N_PAIRS)], "d": D}
    w = CacheWriter(tmp_path / "cache", meta, shard_vectors=40)
    for text in range(2 * N_PAIRS):
        w.add_sequence(list(range(1000 + 20 * text, 1020 + 20 * text)))
    for text in range(2 * N_PAIRS):
        n = int(torch.randint(3, 15, (1,), generator=g))
        pos = torch.randperm(20, generator=g)[:n].sort().values
        ones = torch.ones(n)
        x = torch.randn(n, D, generator=g)
        w.add(x, 0 * ones, ones, ones * (text // 2), ones * (text % 2), pos, 1000 + 20 * text + pos)
    w.close()
    return ActivationCache(tmp_path / "cache")


def batch_lengths(cache: ActivationCache, batch_size: int) -> list[int]:
    sizes = [s["vectors"] for s in cache.index["shards"]]
    return [min(batch_size, size - i) for size in sizes for i in range(0, size, batch_size)]


@pytest.fixture
def setup(tmp_path):
    sae = TopKSAE.create(D, SAEConfig(num_latents=LATENTS, k=5, seed=1))
    with torch.no_grad():
        sae.coder.encoder.bias.normal_(0, 0.3, generator=torch.Generator().manual_seed(2))

    def encode(x):
        enc = sae.encode(x)
        return enc.acts.float(), enc.indices

    cache = random_cache(tmp_path)
    shards = list(cache.iter_shards())
    every = {f: torch.cat([s[f] for s in shards]).long() for f in ("pair", "side", "position", "token")}
    with torch.no_grad():
        dense = sae.dense(torch.cat([s["x"] for s in shards]).float()).double()
    return cache, sae, encode, every, dense


@pytest.mark.parametrize("batch_size", [7, 40, 4096])
def test_encoded_batches_follow_the_cache_and_the_encoder(setup, batch_size):
    cache, _, encode, every, _ = setup
    got = list(encoded_batches(cache, encode, batch_size, "test", progress=False))
    assert [len(b.pair) for b in got] == batch_lengths(cache, batch_size)  # batches never cross a shard
    assert len(got) == cache.batch_count(batch_size)
    for f in ("pair", "side", "position", "token"):
        assert torch.equal(torch.cat([getattr(b, f) for b in got]), every[f])
    for b, raw in zip(got, cache.iter_batches(batch_size)):
        acts, indices = encode(raw.x.float())
        assert torch.equal(b.acts, acts) and torch.equal(b.indices, indices.long())
        assert b.indices.dtype == torch.long and torch.equal(b.response, 2 * b.pair + b.side)
    bare = list(encoded_batches(cache, None, batch_size, "test", progress=False))
    assert [tuple(b.acts.shape) for b in bare] == [(len(b.pair), 0) for b in got]
    assert torch.equal(torch.cat([b.response for b in bare]), 2 * every["pair"] + every["side"])


def test_progress_bar_counts_batches_and_respects_quiet(setup, capsys, monkeypatch):
    cache, _, encode, _, _ = setup
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    list(encoded_batches(cache, encode, 10, "encoding", progress=True))
    n = len(batch_lengths(cache, 10))
    assert n == 17 and -(-len(cache) // 10) == 15  # shards end in short batches: more than len / size
    assert f"encoding:   0%|          | 0/{n} " in capsys.readouterr().err
    monkeypatch.setenv("TQDM_DISABLE", "1")
    list(encoded_batches(cache, encode, 10, "encoding", progress=True))
    assert "encoding" not in capsys.readouterr().err


def test_latent_columns():
    column = LatentColumns([5, 2, 9, 2])
    idx = torch.tensor([[0, 2, 5], [9, 10, 100]])
    assert column(idx).tolist() == [[-1, 3, 0], [2, -1, -1]]  # a latent listed twice: its last column
    assert LatentColumns([])(idx).tolist() == [[-1] * 3] * 2


def test_streamed_passes_match_a_dense_encoding(setup):
    cache, _, encode, every, dense = setup
    side = every["side"].numpy()
    z = dense.numpy()
    sal = compute_salience(cache, encode, LATENTS, batch_size=7, progress=False)
    np.testing.assert_allclose(sal.chosen_sum, z[side == 0].sum(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sal.rejected_sum, z[side == 1].sum(0), rtol=1e-5, atol=1e-5)
    assert sal.chosen_count.tolist() == (z[side == 0] > 0).sum(0).tolist()

    latents = [int(i) for i in sal.ranking()[:6]]
    values, meta, counts = top_activations(cache, encode, latents, top_m=4, batch_size=7, progress=False)
    assert counts.tolist() == (z[:, latents] > 0).sum(0).tolist()
    for li, latent in enumerate(latents):
        best = np.argsort(-z[:, latent], kind="stable")[:4]
        np.testing.assert_allclose(values[li].numpy(), np.maximum(z[best, latent], 0), rtol=1e-5)
        row = int(best[0])
        assert meta[li, 0].tolist() == [int(every[f][row]) for f in ("pair", "side", "position", "token")]

    safe, unsafe = latents[:3], latents[3:]
    sc = safer_scores(cache, encode, safe, unsafe, batch_size=7, progress=False)
    response = (2 * every["pair"] + every["side"]).numpy()
    per_position = z[:, safe].sum(1) - z[:, unsafe].sum(1)
    a = np.array([per_position[response == r].mean() for r in range(2 * N_PAIRS)])
    np.testing.assert_allclose(sc.a_chosen, a[0::2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sc.a_rejected, a[1::2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sc.contributions.sum(1), sc.score, rtol=1e-9, atol=1e-12)
    assert sc.positions.reshape(-1).tolist() == np.bincount(response, minlength=2 * N_PAIRS).tolist()
