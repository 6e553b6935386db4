"""Where a run's time went: the seconds of its finished stages (from its manifest), grouped by stage (every
variant and seed of `train-rm` together) with each group's share, the audit sub-runs' own stages (already inside
`audit`) beside them, and the run's budget (`run.budget_s`). `safer run` prints it last and writes it to
summary.json["timing"]; `bench/stage_timings.py` puts two runs side by side. This is how a new stage or
detector finds out that it broke the demo's budget."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .artifacts import AUDIT_REPEAT, MANIFEST

SUBRUNS = AUDIT_REPEAT.format(repeat="*")
"""Sub-run folders whose stages are part of a top-level stage (the audit's repeats)."""


@dataclass(frozen=True)
class Group:
    name: str
    seconds: float
    count: int
    peak_rss: int | None = None  # the largest peak resident memory of its stages (bytes; resources.py)
    peak_gpu: int | None = None
    peak_disk: int | None = None  # the run directory's largest size while one of its stages ran (disk.py)

    @property
    def label(self) -> str:
        return f"{self.name} (x{self.count})" if self.count > 1 else self.name


def stage_groups(root: Path) -> list[Group]:
    """Finished stages of the run at `root` grouped by stage name, in run order."""
    manifest = root / MANIFEST
    if not manifest.is_file():
        return []
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    peaks: dict[str, dict[str, int]] = {}
    for name, entry in json.loads(manifest.read_text(encoding="utf-8"))["stages"].items():
        if entry.get("status") != "done" or entry.get("seconds") is None:
            continue
        group = name.split("/", 1)[0]
        seconds[group] = seconds.get(group, 0.0) + float(entry["seconds"])
        counts[group] = counts.get(group, 0) + 1
        for key in ("peak_rss_bytes", "peak_gpu_bytes", "peak_disk_bytes"):
            if entry.get(key) is not None:
                peaks.setdefault(group, {})[key] = max(peaks.get(group, {}).get(key, 0), int(entry[key]))
    return [
        Group(
            g,
            round(s, 1),
            counts[g],
            peaks.get(g, {}).get("peak_rss_bytes"),
            peaks.get(g, {}).get("peak_gpu_bytes"),
            peaks.get(g, {}).get("peak_disk_bytes"),
        )
        for g, s in seconds.items()
    ]


def subrun_groups(root: Path) -> dict[str, list[Group]]:
    """The audit sub-runs' stage groups, by sub-run folder (relative to the run)."""
    return {
        str(sub.relative_to(root)): stage_groups(sub)
        for sub in sorted(root.glob(SUBRUNS))
        if (sub / MANIFEST).is_file()
    }


def run_timing(root: Path, budget_s: float | None = None, wall_s: float | None = None) -> dict:
    """summary.json["timing"]: the stage sum, this command's wall time, every group with its share, the
    sub-runs' groups, the budget and whether the stage sum is over it, the largest groups first."""
    groups = stage_groups(root)
    total = round(sum(g.seconds for g in groups), 1)
    largest = sorted(groups, key=lambda g: -g.seconds)
    out = {
        "total_s": total,
        "wall_s": wall_s,
        "groups": [
            {
                "stage": g.name,
                "count": g.count,
                "seconds": g.seconds,
                "share": _share(g.seconds, total),
                "peak_rss_bytes": g.peak_rss,
                "peak_gpu_bytes": g.peak_gpu,
                "peak_disk_bytes": g.peak_disk,
            }
            for g in groups
        ],
        "subruns": {
            sub: [{"stage": g.name, "count": g.count, "seconds": g.seconds} for g in gs]
            for sub, gs in subrun_groups(root).items()
        },
        "largest": [g.label for g in largest[:3]],
        "budget_s": budget_s,
        "over_budget": bool(budget_s is not None and total > budget_s),
    }
    return out


def _share(seconds: float, total: float) -> float:
    return round(seconds / total, 3) if total > 0 else 0.0


def _gib(value: int | None) -> str:
    return f"{value / 2**30:5.2f} GiB" if value else f"{'-':>5}    "


def timing_lines(timing: dict) -> list[str]:
    """The table `safer run` ends with, then one line on the budget (over it: the largest stages named)."""
    rows = [(f"{g['stage']} (x{g['count']})" if g["count"] > 1 else g["stage"], g) for g in timing["groups"]]
    subs = {sub: gs for sub, gs in timing.get("subruns", {}).items() if gs}
    width = max([len(label) for label, _ in rows] + [len("total (stage sum)")] + [30 if subs else 0])
    memory = any(g.get("peak_rss_bytes") for _, g in rows)
    gpu = any(g.get("peak_gpu_bytes") for _, g in rows)
    disk = any(g.get("peak_disk_bytes") for _, g in rows)
    lines = [
        "where the time went (seconds of each stage, summed over its variants and seeds"
        + ("; the peak memory of its largest instance" if memory else "")
        + ("; the run folder's peak size while it ran" if disk else "")
        + "):"
    ]
    for label, g in rows:
        peak = f"  {_gib(g.get('peak_rss_bytes'))} RAM" if memory else ""
        peak += f"  {_gib(g.get('peak_gpu_bytes'))} GPU" if gpu else ""
        peak += f"  {_gib(g.get('peak_disk_bytes'))} disk" if disk else ""
        lines.append(f"  {label:<{width}}  {g['seconds']:>8.1f} s  {100 * g['share']:>5.1f} %{peak}")
        if g["stage"] == "audit":
            for sub, gs in subs.items():
                for sg in gs:
                    name = f"{sub}: {sg['stage']}" + (f" (x{sg['count']})" if sg["count"] > 1 else "")
                    lines.append(f"    {name:<{width - 2}}  {sg['seconds']:>8.1f} s")
    lines.append(f"  {'total (stage sum)':<{width}}  {timing['total_s']:>8.1f} s")
    if timing.get("wall_s") is not None:
        lines.append(f"  {'this command (wall)':<{width}}  {timing['wall_s']:>8.1f} s")
    budget = timing.get("budget_s")
    if budget is None:
        return lines
    if timing["over_budget"]:
        over = [
            f"{label} {g['seconds']:.0f} s ({100 * g['share']:.0f} %)"
            for label, g in sorted(rows, key=lambda r: -r[1]["seconds"])[:3]
        ]
        lines.append(
            f"OVER BUDGET: the stages took {timing['total_s']:.0f} s, run.budget_s is {budget:.0f} s "
            f"(+{timing['total_s'] - budget:.0f} s); largest: {', '.join(over)}"
        )
    else:
        lines.append(
            f"within budget: the stages took {timing['total_s']:.0f} s of run.budget_s {budget:.0f} s"
        )
    return lines
