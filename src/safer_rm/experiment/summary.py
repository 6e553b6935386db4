"""summary.json, the results table and the run report: what a run has so far, and only what was made with
the current settings (a resumed run with other settings has stale results on disk)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..curation.variants import Variant
from ..io import read_json, write_csv, write_json, write_text
from ..report import to_text, write_report
from ..report.markdown import to_markdown
from ..reward.evaluate import SECTIONS, column_entries, write_results
from . import artifacts as A
from .compare import read_outcomes, variant_statistics
from .context import RunContext
from .graph import Key, variants
from .plan import Planner
from .timing import run_timing

log = logging.getLogger(__name__)


def current_seeds(ctx: RunContext, planner: Planner, variant: str) -> list[int]:
    """The seeds whose evaluation of `variant` was made with the current settings (stale ones are left out)."""
    st = planner.by_name["evaluate"]
    return [
        s
        for s in ctx.cfg.run.seeds
        if ctx.paths.eval(variant, s).is_file()
        and ctx.run.done(st.instance(Key(variant, s)), planner.fingerprint_of(st, Key(variant, s)))
    ]


def results_rows(ctx: RunContext, planner: Planner | None = None) -> list[dict]:
    """One row per variant of the current config: every accuracy column's mean and std over the seeds
    evaluated so far, its 95 % interval and size, and the paired differences to clean and to the other methods
    at the same mode and ratio (`compare`)."""
    planner = planner or Planner(ctx)
    seeds = {name: current_seeds(ctx, planner, name) for name in variants(ctx.cfg)}
    outcomes = {name: {s: read_outcomes(ctx.paths.eval(name, s)) for s in got} for name, got in seeds.items()}
    # an interval or a difference only where every seed counted in the mean has its per-pair outcomes
    complete = {name: o for name, o in outcomes.items() if o and all(o.values())}
    stats = variant_statistics(complete, n_boot=ctx.cfg.eval.bootstrap)
    rows = []
    for name, got in seeds.items():
        runs = [read_json(ctx.paths.eval(name, s)) for s in got]
        if not runs:
            continue
        values: dict[str, list[float]] = {}
        sizes: dict[str, int] = {}
        for r in runs:
            for label, c in column_entries(r).items():
                values.setdefault(label, []).append(c["accuracy"])
                if c.get("n") is not None:
                    sizes[label] = c["n"]
        metrics = {
            k: {"mean": float(np.mean(v)), "std": float(np.std(v)) if len(v) > 1 else 0.0}
            for k, v in values.items()
        }
        st = stats.get(name, {"intervals": {}, "compare": {}})
        for label, m in metrics.items():
            if label in sizes:
                m["n"] = sizes[label]
            if label in st["intervals"]:
                m["low"], m["high"] = st["intervals"][label]["low"], st["intervals"][label]["high"]
        variant = Variant.parse(name)
        row = {
            "variant": name,
            "mode": variant.mode,
            "method": variant.method,
            "ratio": variant.ratio,
            "n_seeds": len(runs),
            "metrics": metrics,
            "compare": st["compare"],
        }
        summary_file = ctx.run.file(A.CURATED_SUMMARY, variant=name)
        if summary_file.is_file():
            row["source_mix"] = read_json(summary_file)["source_mix"]
        rows.append(row)
    return rows


def evaluations(ctx: RunContext) -> dict[str, dict]:
    """Evaluation of every (variant, seed) on disk, keyed `variant` (one seed configured) or `variant@seed`."""
    one_seed = len(ctx.cfg.run.seeds) == 1
    return {
        variant if one_seed else f"{variant}@{seed}": read_json(path)
        for variant, seed, path in A.evaluation_files(ctx.run.root)
    }


def variant_summary(row: dict) -> dict:
    """A variant in summary.json: accuracies by evaluation set (`rewardbench` sections, `rewardbench2` subsets
    and overall, `heldout` and `pool` by kind with their sizes under `n`, `extra` sets), every column's
    interval, std over seeds and size, and the paired differences to clean and the other methods (`compare`)."""
    m = row["metrics"]
    out: dict = {"rewardbench": {}, "n_seeds": row["n_seeds"]}
    for label, v in m.items():
        head, _, kind = label.partition(" ")
        if head in ("heldout", "pool") and kind:
            part = out.setdefault(head, {"n": {}})
            part[kind] = v["mean"]
            if "n" in v:
                part["n"][kind] = v["n"]
        elif head == "rewardbench2" and kind:
            part = out.setdefault("rewardbench2", {"n": {}})
            part[kind] = v["mean"]
            if "n" in v:
                part["n"][kind] = v["n"]
        elif label in SECTIONS or label == "overall":
            out["rewardbench"][label] = v["mean"]
            if "n" in v:
                out["rewardbench"].setdefault("n", {})[label] = v["n"]
        else:
            out.setdefault("extra", {})[label] = v["mean"]
    out["interval"] = {k: [v["low"], v["high"]] for k, v in m.items() if "low" in v}
    out["n"] = {k: v["n"] for k, v in m.items() if "n" in v}
    out["std"] = {k: v["std"] for k, v in m.items()}
    out["compare"] = row.get("compare", {})
    if "source_mix" in row:
        out["source_mix"] = row["source_mix"]
    return out


def write_comparisons(eval_dir, rows: list[dict]) -> None:
    """eval/comparisons.json and .csv: one line per (variant, compared with, column)."""
    table = []
    for row in rows:
        for other, cols in row.get("compare", {}).items():
            for label, d in cols.items():
                table.append({"variant": row["variant"], "vs": other, "column": label, **d})
    write_json(eval_dir / "comparisons.json", table)
    columns = [
        "variant",
        "vs",
        "column",
        "diff",
        "low",
        "high",
        "excludes_zero",
        "p",
        "test",
        "n",
        "seeds",
        "seed_sd",
    ]
    write_csv(eval_dir / "comparisons.csv", table, columns)


def machine(ctx: RunContext) -> dict:
    """What changes results across machines: bf16 autocast (on where the CPU has AMX/AVX-512 BF16 under
    `rm.bf16: auto`), the thread count, the BLAS torch was built with."""
    import torch

    from ..precision import use_bf16

    return {
        "bf16": use_bf16(ctx.cfg.rm.bf16),
        "threads": torch.get_num_threads(),
        "device": str(ctx.device),
        "torch": torch.__version__,
        "blas": "mkl" if torch.backends.mkl.is_available() else "other",
    }


REGENERATE = "safer report CONFIG --markdown FILE (with the run's --set options)"


def write_summary(
    ctx: RunContext, planner: Planner | None = None, markdown: Path | None = None, regenerate: str = ""
) -> dict:
    """Write eval/results.*, summary.json, the report and report/results.md (also to `markdown` when given,
    saying `regenerate` is the command that wrote it); log the results table."""
    if not ctx.main:
        return {}
    planner = planner or Planner(ctx)
    write_results(ctx.run.file(A.EVAL_DIR), evaluations(ctx))
    rows = results_rows(ctx, planner)
    write_comparisons(ctx.run.file(A.EVAL_DIR), rows)
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
    summary["machine"] = machine(ctx)
    summary["disk_bytes"] = ctx.run.disk_usage()
    summary["timing"] = {
        **run_timing(ctx.run.root, ctx.cfg.run.budget_s, round(time.time() - ctx.started, 1)),
        "stages": ctx.run.stage_seconds(),
    }
    write_json(ctx.run.file(A.SUMMARY), summary)
    write_report(ctx.run.root, rows, summary, ctx.paths.features_doc())
    results_md = to_markdown(
        rows, summary, ctx.run.manifest, list(ctx.cfg.run.seeds), regenerate or REGENERATE
    )
    write_text(ctx.run.file(A.REPORT_RESULTS_MD), results_md)
    if markdown is not None:
        write_text(Path(markdown), results_md)
        log.info("wrote the results as Markdown to %s", markdown)
    seeds = ctx.cfg.run.seeds
    over = (
        f"one seed ({seeds[0]}): not a result on its own" if len(seeds) == 1 else f"mean over seeds {seeds}"
    )
    log.info(
        "results (accuracy 0..1, %s; +- the 95 %% interval's larger half-width over evaluation pairs%s):\n%s",
        over,
        "" if len(seeds) == 1 else ", seeds then pairs",
        to_text(rows),
    )
    return summary
