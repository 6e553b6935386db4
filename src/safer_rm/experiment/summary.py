"""summary.json, the results table and the run report: what a run has so far, and only what was made with
the current settings (a resumed run with other settings has stale results on disk)."""

from __future__ import annotations

import logging
import time

import numpy as np

from ..io import read_json, write_json
from ..report import to_text, write_report
from ..reward.evaluate import write_results
from .context import RunContext
from .graph import CLEAN, Key, variants
from .plan import Planner
from .stages.analysis import read_features

log = logging.getLogger(__name__)


def results_rows(ctx: RunContext) -> list[dict]:
    """One row per variant of the current config with the mean and std over the seeds evaluated so far."""
    rows = []
    for name in variants(ctx.cfg):
        runs = [
            read_json(ctx.eval_path(name, s)) for s in ctx.cfg.run.seeds if ctx.eval_path(name, s).is_file()
        ]
        if not runs:
            continue
        values: dict[str, list[float]] = {}
        for r in runs:
            for k, v in r.get("rewardbench", {}).items():
                values.setdefault(k, []).append(v)
            for k in ("safety", "chat"):
                if r.get("heldout", {}).get(k) is not None:
                    values.setdefault(f"heldout {k}", []).append(r["heldout"][k])
        metrics = {
            k: {"mean": float(np.mean(v)), "std": float(np.std(v)) if len(v) > 1 else 0.0}
            for k, v in values.items()
        }
        mode, method, ratio = (CLEAN, None, None) if name == CLEAN else name.split("-", 2)
        row = {
            "variant": name,
            "mode": mode,
            "method": method,
            "ratio": None if ratio is None else float(ratio),
            "n_seeds": len(runs),
            "metrics": metrics,
        }
        summary_file = ctx.run.path("curated", name, "summary.json")
        if summary_file.is_file():
            row["source_mix"] = read_json(summary_file)["source_mix"]
        rows.append(row)
    return rows


def evaluations(ctx: RunContext) -> dict[str, dict]:
    """Evaluation of every (variant, seed) on disk, keyed `variant` (one seed configured) or `variant@seed`."""
    out = {}
    eval_root = ctx.run.path("eval")
    for variant_dir in sorted(p for p in eval_root.iterdir() if p.is_dir()) if eval_root.is_dir() else []:
        for f in sorted(variant_dir.glob("seed-*.json")):
            seed = int(f.stem.split("-", 1)[1])
            key = variant_dir.name if len(ctx.cfg.run.seeds) == 1 else f"{variant_dir.name}@{seed}"
            out[key] = read_json(f)
    return out


def variant_summary(row: dict) -> dict:
    m = row["metrics"]
    out = {
        "rewardbench": {k: v["mean"] for k, v in m.items() if not k.startswith("heldout")},
        "heldout": {
            "safety": m.get("heldout safety", {}).get("mean"),
            "chat": m.get("heldout chat", {}).get("mean"),
        },
        "n_seeds": row["n_seeds"],
        "std": {k: v["std"] for k, v in m.items()},
    }
    if "source_mix" in row:
        out["source_mix"] = row["source_mix"]
    return out


def write_summary(ctx: RunContext, planner: Planner | None = None) -> dict:
    """Write eval/results.*, summary.json and the report; log the results table."""
    if not ctx.main:
        return {}
    planner = planner or Planner(ctx)
    write_results(ctx.run.path("eval"), evaluations(ctx))
    rows = results_rows(ctx)
    summary = {
        "run": ctx.cfg.run.name,
        "variants": {row["variant"]: variant_summary(row) for row in rows},
        "data": ctx.run.info("data"),
    }
    for st in planner.stages:
        if (
            st.summary is not None
            and st.enabled(ctx.cfg)
            and ctx.run.done(st.name, planner.fingerprint_of(st, Key()))
        ):
            summary[st.summary_key or st.name] = st.summary(ctx.run.info(st.name))
    summary["disk_bytes"] = ctx.run.disk_usage()
    stages = ctx.run.stage_seconds()
    summary["timing"] = {
        "total_s": round(sum(stages.values()), 1),
        "wall_s": round(time.time() - ctx.started, 1),
        "stages": stages,
    }
    write_json(ctx.run.path("summary.json"), summary)
    write_report(ctx.run.root, rows, summary, read_features(ctx))
    log.info("results (accuracy, 0..1; mean over %d seed(s)):\n%s", len(ctx.cfg.run.seeds), to_text(rows))
    return summary
