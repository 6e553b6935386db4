"""Peak memory of the demo pipeline at 1x and 4x its data (data -> RM -> activations -> SAE -> features ->
scores; the retraining sweep, causal test and audit are off since they only repeat those stages). Each
size runs in a fresh process; its peak resident set size is read from the kernel (ru_maxrss)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import resource, sys, json
from safer_rm.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(scale: int, workdir: Path) -> dict:
    args = [
        "run",
        str(ROOT / "configs" / "demo.yaml"),
        "-q",
        "--set",
        f"run.dir={workdir / f'x{scale}'}",
        "--set",
        f"data.n_pairs={2800 * scale}",
        "--set",
        "curation.methods=[]",
        "--set",
        "audit.enabled=false",
        "--set",
        "causal.enabled=false",
    ]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, cwd=ROOT, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    summary = json.loads((workdir / f"x{scale}" / "summary.json").read_text())
    manifest = json.loads((workdir / f"x{scale}" / "manifest.json").read_text())
    return {
        **result,
        "train_pairs": summary["data"]["train"],
        "pair_vectors": manifest["stages"]["extract"]["info"]["pairs"]["vectors"],
        "general_vectors": manifest["stages"]["extract"]["info"]["general"]["vectors"],
        "seconds": summary["timing"]["total_s"],
    }


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        one, four = measure(1, Path(tmp)), measure(4, Path(tmp))
    return {
        "x1": one,
        "x4": four,
        "data_ratio": four["train_pairs"] / one["train_pairs"],
        "peak_memory_ratio": four["peak_rss_mb"] / one["peak_rss_mb"],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
