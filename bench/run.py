"""`make bench`: every benchmark in one run, results in bench/results.json (ratios measured side by side).
The `*_smollm2` entries measure the embedded SmolLM2-135M-Instruct (30 blocks, chat template) the way the
MiniLM entries above them measure MiniLM, at configs/smol.yaml's layer, frozen blocks and length, sized for
a few minutes on a 2-core CPU."""

from __future__ import annotations

import json
import logging
import platform
import time
from functools import partial
from pathlib import Path

import torch

from bench import (
    demo_cuts_bench,
    extract_bench,
    features_bench,
    padding_bench,
    rm_batch_bench,
    rm_bench,
    sae_bench,
)
from safer_rm.io import write_json

BENCHES = {
    "sae_training": sae_bench.run,
    "extraction": extract_bench.run,
    "features": features_bench.run,
    "rm_training": rm_bench.run,
    "rm_batch": rm_batch_bench.run,
    "demo_cuts": demo_cuts_bench.run,
    "padding": padding_bench.run,
    # SmolLM2 as configs/smol.yaml runs it: activations after block 29 of 30, blocks 1-28 frozen and cached,
    # 128 tokens, batches of 8 pairs; fewer pairs and rounds than MiniLM (6x the parameters per token)
    "extraction_smollm2": partial(
        extract_bench.run, n_pairs=48, layer=29, max_length=128, batch_size=32, rounds=3, model="smollm2"
    ),
    "rm_training_smollm2": partial(
        rm_bench.run, n_pairs=24, batch_size=8, max_length=128, rounds=2, model="smollm2", freeze_layers=28
    ),
    "padding_smollm2": partial(padding_bench.run, max_length=128, model="smollm2"),
}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    results = {
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    for name, fn in BENCHES.items():
        start = time.perf_counter()
        results[name] = fn()
        results[name]["bench_seconds"] = round(time.perf_counter() - start, 1)
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    write_json(Path(__file__).with_name("results.json"), results)
    print("written bench/results.json")


if __name__ == "__main__":
    main()
