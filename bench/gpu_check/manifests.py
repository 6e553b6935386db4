"""What a pipeline run (finished or cut off) says about itself, read from its files: each stage's seconds,
state, error, compact info and peak memory from the run's manifest and from its audit sub-runs'
(audit/repeat-<i>/manifest.json), where the runner records them (src/safer_rm/experiment/runner.py and
resources.py: `peak_gpu_bytes` on CUDA, `peak_rss_bytes` with its `peak_rss_scope`); and the summary's totals,
train size and accuracies."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from .record import first_line, gib


def _scalars(info: dict, depth: int = 1) -> dict:
    """The numbers of a stage's info (and of its dicts of numbers, one level down): a compact record."""
    out = {}
    for k, v in (info or {}).items():
        if isinstance(v, bool | int | float | str) and not (isinstance(v, str) and len(v) > 80):
            out[k] = v
        elif isinstance(v, dict) and depth > 0:
            sub = _scalars(v, depth - 1)
            if sub and len(sub) <= 12:
                out[k] = sub
    return out


def manifests(run_dir: Path) -> list[tuple[str, Path]]:
    """(prefix of its stage names, manifest) for the run and each audit repeat, repeats in order."""
    from safer_rm.experiment.timing import MANIFEST, SUBRUNS

    def index(sub: Path) -> tuple[int, str]:
        tail = sub.name.rsplit("-", 1)[-1]
        return (int(tail) if tail.isdigit() else 1 << 30, sub.name)

    subs = sorted(run_dir.glob(SUBRUNS), key=index)
    return [("", run_dir / MANIFEST)] + [(f"{sub.relative_to(run_dir)}/", sub / MANIFEST) for sub in subs]


def _summary(path: Path) -> dict:
    out: dict = {}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        s = json.loads(path.read_text(encoding="utf-8"))
        out["summary_total_s"] = s.get("timing", {}).get("total_s")
        out["summary_wall_s"] = s.get("timing", {}).get("wall_s")
        out["train_pairs"] = (s.get("data") or {}).get("train")
        out["accuracy"] = {
            v: {
                **(r.get("rewardbench") or {}),
                **{f"heldout {k}": x for k, x in (r.get("heldout") or {}).items()},
            }
            for v, r in (s.get("variants") or {}).items()
        }
    return out


def collect_run(run_dir: Path, process_rss: int | None = None) -> dict:
    """The run's stages (`audit/repeat-<i>/<stage>` for a sub-run's), keyed alike in every field, and the
    run's peaks: the largest stage peak of GPU memory (the runner resets torch's counter as each stage starts
    and folds a nested stage's peak into the enclosing one, so this is the run's peak inside its stages) and
    of resident memory, never below `process_rss` (the child process's own high-water mark as its parent
    sees it, what ran outside any stage included)."""
    out: dict = {
        "stages": {},
        "stage_status": {},
        "stage_info": {},
        "stage_peak_gpu_gib": {},
        "stage_peak_rss_gib": {},
        "stage_peak_rss_scope": {},
        "stage_peak_disk_gib": {},
    }
    gpu: list[int] = []
    rss: list[int] = [process_rss] if process_rss else []
    now = time.time()
    for prefix, manifest in manifests(run_dir):
        if not manifest.is_file():
            continue
        try:
            stages = json.loads(manifest.read_text(encoding="utf-8")).get("stages", {})
        except (OSError, json.JSONDecodeError) as err:
            out.setdefault("collect_errors", []).append(f"{manifest}: {first_line(err)}")
            continue
        for name, entry in stages.items():
            key = prefix + name
            status = entry.get("status")
            out["stage_status"][key] = status
            if entry.get("seconds") is not None:
                out["stages"][key] = float(entry["seconds"])
            elif status == "running" and entry.get("started"):
                out["stages"][key] = round(now - float(entry["started"]), 1)  # cut off while running
            if entry.get("peak_gpu_bytes") is not None:
                gpu.append(int(entry["peak_gpu_bytes"]))
                out["stage_peak_gpu_gib"][key] = gib(gpu[-1])
            if entry.get("peak_rss_bytes") is not None:
                rss.append(int(entry["peak_rss_bytes"]))
                out["stage_peak_rss_gib"][key] = gib(rss[-1])
                out["stage_peak_rss_scope"][key] = entry.get("peak_rss_scope")
            if entry.get("peak_disk_bytes") is not None:  # the run folder's peak while it ran (disk.py)
                out["stage_peak_disk_gib"][key] = gib(int(entry["peak_disk_bytes"]))
            if entry.get("error"):
                out.setdefault("stage_errors", {})[key] = entry["error"]
            info = _scalars(entry.get("info") or {})
            info.pop("history", None)
            if info:
                out["stage_info"][key] = info
    summary = run_dir / "summary.json"
    if summary.is_file():
        out.update(_summary(summary))
    top = [k for k in out["stages"] if not k.startswith("audit/")]
    out["stages_total_s"] = round(sum(out["stages"][k] for k in top), 1)
    out["peak_gpu_gib"] = gib(max(gpu)) if gpu else None
    out["peak_rss_gib"] = gib(max(rss)) if rss else None
    disk = out["stage_peak_disk_gib"].values()
    out["peak_disk_gib"] = max(disk) if disk else None
    out["checkpoints_left"] = sorted(str(p.relative_to(run_dir)) for p in run_dir.glob("**/checkpoints"))
    return out
