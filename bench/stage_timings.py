"""Where a run's time goes: stage seconds from its manifest (and its audit sub-run's), grouped by stage kind,
for one run or side by side for several (e.g. a demo before and after a change, each from a fresh clone).

    python -m bench.stage_timings runs/demo [/other/clone/runs/demo ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def stage_seconds(run: Path) -> dict[str, float]:
    """Seconds by stage group (`train-rm` sums every variant and seed; the audit sub-run's stages are listed
    as `audit: <stage>` and are already inside `audit`)."""
    out: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for prefix, manifest in (("", run / "manifest.json"), ("audit: ", run / "audit" / "manifest.json")):
        if not manifest.is_file():
            continue
        for name, entry in json.loads(manifest.read_text())["stages"].items():
            if entry.get("seconds") is None:
                continue
            group = prefix + name.split("/", 1)[0]
            out[group] += float(entry["seconds"])
            counts[group] += 1
    return {f"{g} (x{counts[g]})" if counts[g] > 1 else g: round(s, 1) for g, s in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    table = {str(r): stage_seconds(r) for r in args.runs}
    for secs in table.values():
        top = sum(v for k, v in secs.items() if not k.startswith("audit: "))
        secs["total (top level)"] = round(top, 1)
    groups = list(dict.fromkeys(g for secs in table.values() for g in secs))
    width = max(len(g) for g in groups)
    print(" " * width + "".join(f"  {Path(r).parent.parent.name or r:>14}" for r in table))
    for g in groups:
        print(g.ljust(width) + "".join(f"  {secs.get(g, float('nan')):>14.1f}" for secs in table.values()))
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
