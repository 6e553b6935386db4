"""Pairwise accuracy the way RewardBench computes it (a tie is wrong; a section is its subsets weighted by
row count; overall is the mean of the sections present), plus held-out in-distribution accuracy split
into safety and chat sources."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.config import SourceConfig
from ..data.load import load_source
from ..data.quality import DropReport
from ..data.records import PreferencePair
from ..io import write_json, write_text
from .config import EvalConfig
from .rewardbench2 import add_rewardbench2
from .scoring import Scorer, reward_pairs

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


@dataclass
class EvalSet:
    """Pairs one RM is scored on, reported as a named part of every table: `rewardbench` style sets by
    RewardBench section (subsets weighted by rows), `grouped` ones by kind (safety / chat) and by source,
    `plain` ones as one accuracy (and by subset where rows have one), `rewardbench2` ones (best-of-N rows as
    pairs, `data.best_of_n.as_pairs`) by RewardBench 2 subset and overall."""

    name: str
    pairs: list[PreferencePair]
    style: str = "grouped"


def set_style(pairs: Sequence[PreferencePair]) -> str:
    """`rewardbench` when some row's subset is a RewardBench subset, else `plain`."""
    known = {s for subsets in SECTIONS.values() for s in subsets}
    return "rewardbench" if any(p.meta.get("subset") in known for p in pairs) else "plain"


def columns(es: EvalSet) -> dict[str, np.ndarray]:
    """The accuracies a set reports, each as the indices of its pairs (see `column_indices`)."""
    return column_indices(
        es.name, es.style, [p.kind or "other" for p in es.pairs], [p.meta.get("subset", "") for p in es.pairs]
    )


def column_indices(
    name: str, style: str, kinds: Sequence[str], subsets: Sequence[str]
) -> dict[str, np.ndarray]:
    """`Safety` (RewardBench itself), `heldout safety`, `pool chat` (a grouped set by kind), `<name> Safety`
    (an extra RewardBench-schema set), `<name>` (any other set). A RewardBench section is the mean over its
    rows, the same as its subsets weighted by row count."""
    out: dict[str, np.ndarray] = {}
    if style == "rewardbench":
        sub = np.array(list(subsets), dtype=object)
        prefix = "" if name == "rewardbench" else f"{name} "
        for section in SECTION_ORDER:
            idx = np.flatnonzero(np.isin(sub, SECTIONS[section]))
            if idx.size:
                out[prefix + section] = idx
    elif style == "grouped":
        kind = np.array([k or "other" for k in kinds], dtype=object)
        for k in ("safety", "chat", *sorted(set(kind) - {"safety", "chat"})):
            idx = np.flatnonzero(kind == k)
            if idx.size:
                out[f"{name} {k}"] = idx
    elif style == "plain" and len(kinds):
        out[name] = np.arange(len(kinds))
    return out  # a `rewardbench2` set has no pairwise columns: see `rewardbench2.unit_columns`


def evaluate_sets(scorer: Scorer, sets: Sequence[EvalSet]) -> tuple[dict, dict[str, np.ndarray]]:
    """(metrics, per-pair margins by set name). All sets are scored in one pass, each distinct text once.
    `metrics` has `columns` ({label: {accuracy, n}}, see `columns`), `rewardbench` sections with `overall`
    and `subsets` for the RewardBench set, and per set its by-kind / by-source or by-subset breakdown."""
    sets = [s for s in sets if s.pairs]
    everything = [p for s in sets for p in s.pairs]
    metrics: dict = {
        "columns": {},
        "sizes": {s.name: len(s.pairs) for s in sets},
        "styles": {s.name: s.style for s in sets},
    }
    margins: dict[str, np.ndarray] = {}
    if not everything:
        return metrics, margins
    scores = reward_pairs(scorer, everything, "evaluating")
    metrics["truncation"] = scores.truncation
    start = 0
    for es in sets:
        stop = start + len(es.pairs)
        margin, correct = scores.margin[start:stop], scores.correct[start:stop]
        start = stop
        margins[es.name] = margin
        for label, idx in columns(es).items():
            metrics["columns"][label] = {"accuracy": float(correct[idx].mean()), "n": int(idx.size)}
        if es.style == "rewardbench":
            per_subset = subset_accuracy([p.meta.get("subset", "unknown") for p in es.pairs], correct)
            if es.name == "rewardbench":
                metrics["rewardbench"] = section_scores(per_subset)
                metrics["subsets"] = per_subset
            else:
                metrics.setdefault("extra", {})[es.name] = {
                    **section_scores(per_subset),
                    "subsets": per_subset,
                }
        elif es.style == "grouped":
            metrics[es.name] = grouped_accuracy(es.pairs, correct)
        elif es.style == "rewardbench2":
            add_rewardbench2(metrics, es.pairs, margin)
        else:
            entry: dict = {"accuracy": float(correct.mean()), "n": len(es.pairs)}
            subsets = [p.meta.get("subset") for p in es.pairs]
            if any(subsets):
                entry["subsets"] = subset_accuracy([s or "unknown" for s in subsets], correct)
            metrics.setdefault("extra", {})[es.name] = entry
    return metrics, margins


def write_margins(path: str | Path, pairs: Sequence[PreferencePair], margin: np.ndarray) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "source", "kind", "subset", "margin"])
    for p, m in zip(pairs, margin):
        w.writerow([p.id, p.source, p.kind, p.meta.get("subset", ""), f"{float(m):.6g}"])
    write_text(path, buf.getvalue())


def results_table(results: dict[str, dict]) -> tuple[list[str], list[list]]:
    """One row per evaluation: RewardBench sections and overall, then every other accuracy column (held-out,
    pool, extra sets)."""
    labels: list[str] = []
    for r in results.values():
        for label in column_entries(r):
            if label not in labels:
                labels.append(label)
    rb = [s for s in SECTION_ORDER if s in labels]
    if any("overall" in r.get("rewardbench", {}) for r in results.values()):
        rb.append("overall")
    labels = rb + [label for label in labels if label not in rb]
    header = ["variant", *labels]
    rows = []
    for name, r in results.items():
        cols = column_entries(r)
        rows.append([name, *[cols[label]["accuracy"] if label in cols else None for label in labels]])
    return header, rows


def column_entries(r: dict) -> dict[str, dict]:
    """An evaluation's columns as {label: {"accuracy", "n"}}, RewardBench's overall included (without n);
    evaluations written before the columns existed give their RewardBench sections and held-out kinds."""
    if "columns" in r:
        out = dict(r["columns"])
    else:
        out = {k: {"accuracy": v} for k, v in r.get("rewardbench", {}).items() if k != "overall"}
        for k in ("safety", "chat"):
            if r.get("heldout", {}).get(k) is not None:
                out[f"heldout {k}"] = {"accuracy": r["heldout"][k], "n": r["heldout"].get("n", {}).get(k)}
    if r.get("rewardbench", {}).get("overall") is not None:
        out["overall"] = {"accuracy": r["rewardbench"]["overall"]}
    return out


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
