"""SAE stage 1 streamed (activations/stream.py): the vectors a stream yields are the ones the cache holds,
shuffled per epoch and reproducibly, in batches mixed across sequences; the pipeline's stage 1 runs from the
stream with nothing written to activations/general."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from safer_rm.activations import ActivationCache, extract_pairs
from safer_rm.activations.stream import StreamBatches
from safer_rm.reward.scoring import Scorer

from helpers import eval_rm, pairs_from, separable_rows, toy_config


def _rows(x: torch.Tensor) -> list[tuple[float, ...]]:
    return sorted(tuple(r) for r in x.tolist())


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_stream_yields_the_cached_vectors_shuffled_and_reproducible(fixture, request, tmp_path):
    _tok, model, renderer = eval_rm(request.getfixturevalue(fixture))
    pairs = pairs_from(separable_rows(10))
    extract_pairs(
        Scorer(model, renderer, batch_size=4, progress=False),
        pairs,
        1,
        "all",
        tmp_path / "c",
        dtype="float16",
    )
    cache = ActivationCache(tmp_path / "c")
    cached = torch.cat(list(cache.batches(64)))

    def stream(seed: int = 3) -> StreamBatches:
        return StreamBatches(Scorer(model, renderer, 4), pairs, 1, "all", 1, buffer=40, seed=seed)

    one = stream()
    assert len(one) == len(cache)  # batch size 1: every vector once an epoch
    first, second = torch.cat(list(one)), torch.cat(list(one))
    assert first.dtype == torch.float32 and first.shape == cached.shape
    assert _rows(first) == _rows(
        cached.float()
    )  # the cache's values (fp16-rounded alike), none lost or twice
    assert not torch.equal(first, second) and _rows(second) == _rows(first)  # epochs reshuffle
    assert torch.equal(torch.cat(list(stream())), first)  # the same seed, the same stream
    assert not torch.equal(torch.cat(list(stream(seed=4))), first)
    # the buffer mixes sequences: consecutive vectors do not come in their sequences' order
    order = {row: i for i, row in enumerate(tuple(r) for r in cached.float().tolist())}
    ranks = [order[tuple(r)] for r in first[:20].tolist()]
    assert ranks != sorted(ranks)


def test_stream_batches_are_full_and_sized(tiny_bert):
    _tok, model, renderer = eval_rm(tiny_bert)
    pairs = pairs_from(separable_rows(8))
    s = StreamBatches(Scorer(model, renderer, 4), pairs, 1, "response", 16, buffer=64)
    batches = list(s)
    assert len(batches) == len(s) == s.vectors // 16 > 1
    assert all(b.shape == (16, model.config.hidden_size) for b in batches)
    with pytest.raises(ValueError, match="buffer"):
        StreamBatches(Scorer(model, renderer, 32), pairs, 1, "response", 16, buffer=20)


@pytest.mark.slow(20)
def test_pipeline_stage1_streamed_writes_no_general_cache(tmp_path, tiny_bert):
    from safer_rm.cli import main

    cfg_path = toy_config(tmp_path, tiny_bert)
    cfg = yaml.safe_load(open(cfg_path))
    cfg["activations"].update({"general_source": "stream", "stream_buffer": 256})
    with open(cfg_path, "w") as fh:
        yaml.safe_dump(cfg, fh)
    assert main(["run", cfg_path, "-q", "--stages", "train-sae"]) == 0
    run = tmp_path / "run"
    assert not (run / "activations" / "general").exists()
    assert (run / "activations" / "pairs" / "index.json").is_file()
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert stages["extract"]["info"]["general"]["source"] == "stream"
    metrics = json.loads((run / "sae" / "metrics.json").read_text())
    assert metrics["training"]["stage1_steps"] > 0 and 0 <= metrics["fvu"] < 1.5
