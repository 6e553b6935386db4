"""Pair scoring, salience and context mining throughput (vectors/s) over an activation cache: the demo's
(runs/demo, after `make demo`) when present, else a synthetic cache of the same shape with a fresh SAE."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from bench.common import interleaved, timed
from safer_rm.activations import ActivationCache, CacheWriter
from safer_rm.curation.score import safer_scores
from safer_rm.features.contexts import top_activations
from safer_rm.features.salience import compute_salience
from safer_rm.sae import SAEConfig, TopKSAE, load_sae


def _synthetic(folder: Path, n_pairs: int = 3000, per_text: int = 8, d: int = 384) -> ActivationCache:
    g = torch.Generator().manual_seed(0)
    w = CacheWriter(
        folder, {"layer": 5, "policy": "synthetic", "pairs": [str(i) for i in range(n_pairs)], "d": d}
    )
    for _ in range(n_pairs * 2):
        w.add_sequence(list(range(per_text * 4)))
    n = n_pairs * 2 * per_text
    text = torch.arange(n) // per_text
    w.add(
        torch.randn(n, d, generator=g),
        torch.zeros(n),
        torch.ones(n),
        text // 2,
        text % 2,
        torch.arange(n) % per_text,
        torch.randint(0, 1000, (n,), generator=g),
    )
    w.close()
    return ActivationCache(folder)


def run(run_dir: str = "runs/demo", rounds: int = 3) -> dict:
    tmp = tempfile.TemporaryDirectory()
    demo = Path(run_dir)
    if (demo / "activations" / "pairs" / "index.json").is_file() and (demo / "sae").is_dir():
        cache = ActivationCache(demo / "activations" / "pairs")
        layer = cache.index["layer"]
        sae = load_sae(demo / "sae", f"layers.{layer}", layer=layer).sae
        source = str(demo)
    else:
        cache = _synthetic(Path(tmp.name) / "cache")
        sae = TopKSAE.create(cache.d, SAEConfig(num_latents=8 * cache.d, k=32))
        source = "synthetic"

    def encode(x):
        e = sae.encode(x)
        return e.acts.float(), e.indices

    latents = list(range(0, sae.num_latents, max(1, sae.num_latents // 256)))[:256]
    safe, unsafe = latents[:16], latents[16:32]
    with torch.inference_mode():
        secs = interleaved(
            {
                "pair_scores": lambda: timed(
                    lambda: safer_scores(cache, encode, safe, unsafe, progress=False)
                ),
                "salience": lambda: timed(
                    lambda: compute_salience(cache, encode, sae.num_latents, progress=False)
                ),
                "contexts": lambda: timed(
                    lambda: top_activations(cache, encode, latents, 100, progress=False)
                ),
            },
            rounds,
        )
    tmp.cleanup()
    n = len(cache)
    return {
        "cache": source,
        "vectors": n,
        "num_latents": sae.num_latents,
        "k": sae.k,
        **{f"{k}_vectors_per_s": n / v for k, v in secs.items()},
        "context_latents": len(latents),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
