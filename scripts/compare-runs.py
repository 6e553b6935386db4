#!/usr/bin/env python3
"""Compare two run directories of the same config (e.g. `make demo` before and after a refactor): sha256 of
the data split, pair scores, feature selection, edited sets, the causal test's and the audit's results and each
audit repeat's scores, and the accuracies of every variant in summary.json. Exit 0 when all are identical, 1
otherwise; a file every run writes that is missing from both runs counts as a difference (nothing is skipped).

    python3 scripts/compare-runs.py RUN_A RUN_B
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

EXPECTED = (  # every run of a config with the sweep writes these; one missing from both runs is reported, not skipped
    "data/train.jsonl",
    "data/test.jsonl",
    "scores/pairs.csv",
    "scores/contributions.safetensors",
    "features/selection.json",
)
OPTIONAL = ("causal/results.json", "audit/results.json")  # stages a config may turn off
GLOBS = (  # edited sets, and each audit repeat's scores and detector values (audit/repeat-<i>/...)
    "curated/*/train.jsonl",
    "curated/*/edits.csv",
    "audit/repeat-*/scores/pairs.csv",
    "audit/repeat-*/detect/scores.csv",
)


def files(run: Path) -> list[str]:
    found = [name for name in EXPECTED + OPTIONAL if (run / name).is_file()]
    found += [str(f.relative_to(run)) for pattern in GLOBS for f in sorted(run.glob(pattern))]
    return found


def digests(run: Path) -> dict[str, str]:
    return {name: hashlib.sha256((run / name).read_bytes()).hexdigest() for name in files(run)}


def accuracies(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    return {k: (v["rewardbench"], v["heldout"]) for k, v in summary["variants"].items()}


def main(a: Path, b: Path) -> int:
    da, db = digests(a), digests(b)
    differ = sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))
    print(f"files: {len(da)} in {a}, {len(db)} in {b}; identical: {len(set(da) | set(db)) - len(differ)}")
    for name in EXPECTED:
        if name not in da and name not in db:
            print(f"  missing from both runs: {name}")
            differ.append(name)
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
