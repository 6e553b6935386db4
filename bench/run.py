"""`make bench`: every benchmark in one run, results in bench/results.json (ratios measured side by side)."""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path

import torch

from bench import extract_bench, features_bench, rm_batch_bench, rm_bench, sae_bench
from safer_rm.io import write_json

BENCHES = {
    "sae_training": sae_bench.run,
    "extraction": extract_bench.run,
    "features": features_bench.run,
    "rm_training": rm_bench.run,
    "rm_batch": rm_batch_bench.run,
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
