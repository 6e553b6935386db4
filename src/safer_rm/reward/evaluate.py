"""Pairwise accuracy the way RewardBench computes it (a tie is wrong; a section is its subsets weighted by
row count; overall is the mean of the sections present), plus held-out in-distribution accuracy split
into safety and chat sources."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.config import SourceConfig
from ..data.load import load_source
from ..data.quality import DropReport
from ..data.records import PreferencePair
from ..io import write_json, write_text
from ..models.render import Renderer
from .config import EvalConfig
from .scoring import reward_pairs

SECTIONS: dict[str, list[str]] = {
    "Chat": ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"],
    "Chat Hard": [
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ],
    "Safety": [
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "xstest-should-respond",
        "donotanswer",
    ],
    "Reasoning": ["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"],
}
SECTION_ORDER = ["Chat", "Chat Hard", "Safety", "Reasoning"]


def load_rewardbench(
    cfg: EvalConfig, root: str, report: DropReport | None = None, seed: int = 0
) -> list[PreferencePair]:
    src = SourceConfig(
        name="rewardbench",
        path=cfg.rewardbench,
        format="rewardbench",
        kind="chat",
        hub=cfg.rewardbench_hub,
        split=cfg.rewardbench_split,
        hub_split=cfg.rewardbench_split,
    )
    pairs = load_source(src, root, report or DropReport())
    if cfg.max_rewardbench_pairs is not None and len(pairs) > cfg.max_rewardbench_pairs:
        by_subset: dict[str, list[PreferencePair]] = defaultdict(list)
        for p in pairs:
            by_subset[p.meta.get("subset", "")].append(p)
        rng = random.Random(seed)
        frac = cfg.max_rewardbench_pairs / len(pairs)
        pairs = [p for rows in by_subset.values() for p in rng.sample(rows, max(1, round(len(rows) * frac)))]
    return pairs


def subset_accuracy(subsets: Sequence[str], correct: np.ndarray) -> dict[str, dict]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for s, c in zip(subsets, correct):
        groups[s].append(bool(c))
    return {s: {"accuracy": float(np.mean(v)), "n": len(v)} for s, v in sorted(groups.items())}


def section_scores(per_subset: dict[str, dict]) -> dict[str, float]:
    """Sections present (row-count-weighted subsets) and their unweighted mean as `overall`."""
    out: dict[str, float] = {}
    for section in SECTION_ORDER:
        rows = [per_subset[s] for s in SECTIONS[section] if s in per_subset]
        total = sum(r["n"] for r in rows)
        if total:
            out[section] = sum(r["accuracy"] * r["n"] for r in rows) / total
    if out:
        out["overall"] = float(np.mean(list(out.values())))
    return out


def grouped_accuracy(pairs: Sequence[PreferencePair], correct: np.ndarray) -> dict:
    by_kind: dict[str, list[bool]] = defaultdict(list)
    by_source: dict[str, list[bool]] = defaultdict(list)
    for p, c in zip(pairs, correct):
        by_kind[p.kind or "other"].append(bool(c))
        by_source[p.source].append(bool(c))
    out: dict = {k: float(np.mean(v)) for k, v in sorted(by_kind.items())}
    out["n"] = {k: len(v) for k, v in sorted(by_kind.items())}
    out["by_source"] = {s: {"accuracy": float(np.mean(v)), "n": len(v)} for s, v in sorted(by_source.items())}
    return out


def evaluate_rm(
    model,
    renderer: Renderer,
    rewardbench: Sequence[PreferencePair],
    heldout: Sequence[PreferencePair] = (),
    batch_size: int = 32,
    bf16: bool = False,
    progress: bool = True,
    prefix=None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """(metrics, per-pair margins) for a model on the RewardBench pairs and the held-out pairs."""
    metrics: dict = {}
    margins: dict[str, np.ndarray] = {}
    if rewardbench:
        scores = reward_pairs(model, renderer, rewardbench, batch_size, bf16, "RewardBench", progress, prefix)
        per_subset = subset_accuracy([p.meta.get("subset", "unknown") for p in rewardbench], scores.correct)
        metrics["rewardbench"] = section_scores(per_subset)
        metrics["subsets"] = per_subset
        metrics["rewardbench_truncation"] = scores.truncation
        margins["rewardbench"] = scores.margin
    if heldout:
        scores = reward_pairs(model, renderer, heldout, batch_size, bf16, "held-out", progress, prefix)
        metrics["heldout"] = grouped_accuracy(heldout, scores.correct)
        margins["heldout"] = scores.margin
    return metrics, margins


def write_margins(path: str | Path, pairs: Sequence[PreferencePair], margin: np.ndarray) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "source", "kind", "subset", "margin"])
    for p, m in zip(pairs, margin):
        w.writerow([p.id, p.source, p.kind, p.meta.get("subset", ""), f"{float(m):.6g}"])
    write_text(path, buf.getvalue())


def results_table(results: dict[str, dict]) -> tuple[list[str], list[list]]:
    """One row per variant: RewardBench sections, overall, held-out safety and chat."""
    sections = [s for s in SECTION_ORDER if any(s in r.get("rewardbench", {}) for r in results.values())]
    header = ["variant", *sections, "overall", "heldout safety", "heldout chat"]
    rows = []
    for name, r in results.items():
        rb, ho = r.get("rewardbench", {}), r.get("heldout", {})
        rows.append(
            [name, *[rb.get(s) for s in sections], rb.get("overall"), ho.get("safety"), ho.get("chat")]
        )
    return header, rows


def format_table(header: list[str], rows: list[list]) -> str:
    cells = [[c if isinstance(c, str) else ("-" if c is None else f"{c:.3f}") for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def write_results(eval_dir: str | Path, results: dict[str, dict]) -> str:
    """results.json, results.csv (one row per variant) and the printed table; returns the table."""
    eval_dir = Path(eval_dir)
    write_json(eval_dir / "results.json", results)
    header, rows = results_table(results)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        w.writerow(["" if c is None else (f"{c:.6f}" if isinstance(c, float) else c) for c in row])
    write_text(eval_dir / "results.csv", buf.getvalue())
    subset_names = sorted({s for r in results.values() for s in r.get("subsets", {})})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["variant", *subset_names])
    for name, r in results.items():
        w.writerow(
            [
                name,
                *[
                    f"{r['subsets'][s]['accuracy']:.6f}" if s in r.get("subsets", {}) else ""
                    for s in subset_names
                ],
            ]
        )
    write_text(eval_dir / "subsets.csv", buf.getvalue())
    return format_table(header, rows)
