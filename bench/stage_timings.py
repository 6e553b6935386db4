"""Where runs' time goes, side by side: stage seconds from each run's manifest (every variant and seed of a stage
summed, the audit sub-runs' stages listed as `audit/repeat-0: <stage>` and already inside `audit`), and the
ratio of the last run to the first. Use it to see what a change did to the demo, e.g. a demo before and after,
each from a fresh clone:

    python -m bench.stage_timings /before/runs/demo runs/demo [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safer_rm.experiment.timing import stage_groups, subrun_groups


def stage_seconds(run: Path) -> dict[str, float]:
    """Seconds by stage group, the sub-runs' groups prefixed by their folder, and the top-level total."""
    groups = stage_groups(run)
    out = {g.label: g.seconds for g in groups}
    for sub, gs in subrun_groups(run).items():
        out.update({f"{sub}: {g.label}": g.seconds for g in gs})
    out["total (stage sum)"] = round(sum(g.seconds for g in groups), 1)
    return out


def side_by_side(runs: list[Path]) -> tuple[list[str], dict[str, dict[str, float]]]:
    table = {str(r): stage_seconds(r) for r in runs}
    rows = list(dict.fromkeys(k for secs in table.values() for k in secs))
    rows.append(rows.pop(rows.index("total (stage sum)")))
    return rows, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (the first is the reference)")
    ap.add_argument("--json", type=Path, help="also write the table as JSON")
    args = ap.parse_args()
    rows, table = side_by_side(args.runs)
    width = max(len(r) for r in rows)
    cols = list(table)
    print(" " * width + "".join(f"  {f'run {i + 1}':>10}" for i in range(len(cols))) + "  last/first")
    for r in rows:
        vals = [table[c].get(r) for c in cols]
        cells = "".join(f"  {v:>10.1f}" if v is not None else f"  {'-':>10}" for v in vals)
        ratio = f"{vals[-1] / vals[0]:.2f}" if vals[0] and vals[-1] is not None and len(vals) > 1 else "-"
        print(f"{r:<{width}}{cells}  {ratio:>10}")
    for i, c in enumerate(cols):
        print(f"run {i + 1}: {c}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
