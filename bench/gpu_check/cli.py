"""`python -m bench.gpu_check PART --json OUT.json ...`: the command line scripts/gpu-check.sh calls, one part
per process; and its two small parts: `note` (the script records a part that it killed or skipped) and `end`
(the overall status and a table on stdout)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .llama import cmd_llama
from .machine import cmd_begin
from .pipeline import cmd_pipeline
from .record import FINAL, load, save


def cmd_note(args) -> int:
    path = Path(args.json)
    doc = load(path)
    part = doc.setdefault("parts", {}).setdefault(args.part, {})
    if part.get("status") not in FINAL or args.force:
        part["status"] = args.status
        part["error"] = args.error
    elif not part.get("error"):
        part["error"] = args.error
    save(path, doc)
    return 0


def _stage_line(pipe: dict, stage: str, secs: float) -> str:
    line = f"    {stage:42s} {secs:8.1f} s"
    gpu = (pipe.get("stage_peak_gpu_gib") or {}).get(stage)
    rss = (pipe.get("stage_peak_rss_gib") or {}).get(stage)
    if gpu is not None:
        line += f"  peak {gpu:.2f} GiB"
    if rss is not None:
        line += f"  rss {rss:.2f} GiB"
    return line


def cmd_end(args) -> int:
    path = Path(args.json)
    doc = load(path)
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    parts = doc.get("parts", {})
    doc["status"] = "ok" if parts and all(p.get("status") == "ok" for p in parts.values()) else "failed"
    save(path, doc)
    dev = doc.get("device", {})
    print(f"\ngpu-check: {doc['status']} in {doc['total_wall_s']} s on {dev.get('name')} -> {path}")
    for name, p in parts.items():
        print(f"  {name:10s} {p.get('status', '?'):8s} {p.get('seconds', '')!s:>7} s  {p.get('error') or ''}")
    pipe = parts.get("pipeline", {})
    for stage, secs in (pipe.get("stages") or {}).items():
        print(_stage_line(pipe, stage, secs))
    for name, c in (parts.get("llama_1b", {}).get("cases") or {}).items():
        if c.get("step_s") is not None:
            peak = f"peak {c['peak_gib']:.1f} GiB" if c.get("peak_gib") is not None else ""
            print(f"    {name:16s} {c['step_s']:.3f} s/step  {c['tokens_per_s']:>10.0f} tok/s  {peak}")
        else:
            print(f"    {name:16s} {c.get('error')}")
    return 0 if doc["status"] == "ok" else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.gpu_check",
        description="The Python half of scripts/gpu-check.sh: one part of the GPU check per call, into one JSON.",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("begin", "pipeline", "llama", "note", "end"):
        p = sub.add_parser(name)
        p.add_argument("--json", required=True)
        if name in ("pipeline", "llama"):
            p.add_argument("--budget", type=float, required=True, help="seconds this part may take")
        if name == "begin":
            p.add_argument("--setup-how", default="")
            p.add_argument("--setup-seconds", type=float, default=None)
        if name == "note":
            p.add_argument("--part", required=True)
            p.add_argument("--error", required=True)
            p.add_argument("--status", default="failed")
            p.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    return {
        "begin": cmd_begin,
        "pipeline": cmd_pipeline,
        "llama": cmd_llama,
        "note": cmd_note,
        "end": cmd_end,
    }[args.cmd](args)
