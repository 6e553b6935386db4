#!/usr/bin/env python3
"""Compare two run directories of the same config (e.g. `make demo` before and after a refactor): sha256 of
the data split, pair scores, feature selection, edited sets, each audit repeat's scores and every evaluation's
per-pair margins; the causal test's and the audit's results and every evaluation's metrics as JSON values, with
measured seconds (`cost_s`, `seconds`) left out, since a refactor changes timings, not results; and the accuracies
of every variant in summary.json. Exit 0 when all are identical, 1 otherwise; a file every run writes that is
missing from both runs counts as a difference (nothing is skipped), and so does a file only one run has.

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
GLOBS = (  # edited sets, each audit repeat's scores and detector values, every evaluation and its margins
    "curated/*/train.jsonl",
    "curated/*/edits.csv",
    "audit/repeat-*/scores/pairs.csv",
    "audit/repeat-*/detect/scores.csv",
    "eval/*/seed-*.json",
    "eval/*/seed-*.*.csv",
)
TIMINGS = {"cost_s", "seconds"}  # measured, not computed: left out of the JSON comparison


def files(run: Path) -> list[str]:
    found = [name for name in EXPECTED + OPTIONAL if (run / name).is_file()]
    found += [str(f.relative_to(run)) for pattern in GLOBS for f in sorted(run.glob(pattern))]
    return found


def _results(value):
    """A JSON document without its measured seconds."""
    if isinstance(value, dict):
        return {k: _results(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_results(v) for v in value]
    return value


def digest(path: Path) -> str:
    if path.suffix == ".json":
        data = json.dumps(_results(json.loads(path.read_text())), sort_keys=True).encode()
    else:
        data = path.read_bytes()
    return hashlib.sha256(data).hexdigest()


def digests(run: Path) -> dict[str, str]:
    return {name: digest(run / name) for name in files(run)}


def json_differences(a: Path, b: Path, limit: int = 5) -> list[str]:
    """The first key paths whose values differ between two JSON documents (seconds left out)."""
    out: list[str] = []

    def walk(x, y, where: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{where}.{k}")
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{where}[{i}]")
        elif x != y:
            out.append(f"{where or '.'}: {json.dumps(x)[:60]} vs {json.dumps(y)[:60]}")

    walk(_results(json.loads(a.read_text())), _results(json.loads(b.read_text())), "")
    return out


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
        only = f" (only in {a})" if name not in db and name in da else ""
        only = only or (f" (only in {b})" if name not in da and name in db else "")
        print(f"  differs: {name}{only}")
        if name.endswith(".json") and name in da and name in db:
            for line in json_differences(a / name, b / name):
                print(f"    {line}")
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
