#!/usr/bin/env python3
"""Compare two run directories of the same config (e.g. `make demo` before and after a refactor): sha256 of
the data split, pair scores, edited sets and the audit's scores, and the accuracies of every variant in
summary.json. Exit 0 when all are identical, 1 otherwise.

    python3 scripts/compare-runs.py RUN_A RUN_B
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def digests(run: Path) -> dict[str, str]:
    files = [
        run / "data" / "train.jsonl",
        run / "data" / "test.jsonl",
        run / "scores" / "pairs.csv",
        run / "scores" / "contributions.safetensors",
        *sorted((run / "curated").glob("*/train.jsonl")),
        *sorted((run / "curated").glob("*/edits.csv")),
        run / "audit" / "scores" / "pairs.csv",
        run / "features" / "selection.json",
        run / "causal" / "results.json",
        run / "audit" / "results.json",
    ]
    return {str(f.relative_to(run)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def accuracies(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    return {k: (v["rewardbench"], v["heldout"]) for k, v in summary["variants"].items()}


def main(a: Path, b: Path) -> int:
    da, db = digests(a), digests(b)
    differ = sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))
    print(f"files: {len(da)} in {a}, {len(db)} in {b}; identical: {len(da) - len(differ)}")
    for name in differ:
        print(f"  differs: {name}")
    acc_a, acc_b = accuracies(a), accuracies(b)
    same_acc = acc_a == acc_b
    print(f"summary.json accuracies of {len(acc_a)} variants identical: {same_acc}")
    for name in sorted(set(acc_a) | set(acc_b)):
        if acc_a.get(name) != acc_b.get(name):
            print(f"  differs: {name}: {acc_a.get(name)} vs {acc_b.get(name)}")
    return 0 if not differ and same_acc else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
