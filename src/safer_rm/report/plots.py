"""PNG plots of a ratio sweep: accuracy vs edit ratio, one line per selection method, the clean model as a
dashed line (the feature and audit plots are in `feature_plots`). Figures are built with matplotlib's object
API (no pyplot, no global backend switch, no display) and written atomically."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ..io import write_bytes
from .page import as_float
from .rows import methods_in, metric_interval, metric_names, metric_stat

log = logging.getLogger(__name__)

DPI = 110
MODE_TITLES = {
    "poison": "Poisoning (flip the top q % of pairs)",
    "denoise": "Denoising (remove the bottom q % of pairs)",
}
SWEEP_METRICS = (
    ("Safety", "safety"),
    ("Chat", "chat"),
    ("Chat Hard", "chat_hard"),
    ("Reasoning", "reasoning"),
    ("heldout safety", "heldout_safety"),
    ("heldout chat", "heldout_chat"),
    ("pool safety", "pool_safety"),
    ("pool chat", "pool_chat"),
    ("rewardbench2 Safety", "rewardbench2_safety"),
    ("rewardbench2 overall", "rewardbench2_overall"),
)
"""(metric, file-name part) plotted per mode when present: `<mode>_<part>.png`."""
METRIC_LABELS = {
    "Safety": "RewardBench Safety",
    "Chat": "RewardBench Chat",
    "Chat Hard": "RewardBench Chat Hard",
    "Reasoning": "RewardBench Reasoning",
    "heldout safety": "held-out safety pairs",
    "heldout chat": "held-out chat pairs",
    "pool safety": "evaluation-pool safety pairs",
    "pool chat": "evaluation-pool chat pairs",
    "rewardbench2 Safety": "RewardBench 2 Safety",
    "rewardbench2 overall": "RewardBench 2 overall",
}
METHOD_STYLE = {
    "safer": ("#c0392b", "o", "SAFER"),
    "random": ("#7f8c8d", "s", "random"),
    "reward_margin": ("#2e86c1", "^", "reward margin"),
}
EXTRA_COLORS = ("#8e44ad", "#d68910", "#17a589", "#5d6d7e")

Rows = Sequence[Mapping[str, Any]]


def slug(metric: str) -> str:
    """A metric's file-name part: `xstest Safety` -> `xstest_safety`."""
    return "".join(c if c.isalnum() else "_" for c in metric.lower()).strip("_") or "metric"


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    write_bytes(path, buf.getvalue())
    return path


def _style(method: str, i: int) -> tuple[str, str, str]:
    return METHOD_STYLE.get(method, (EXTRA_COLORS[i % len(EXTRA_COLORS)], "D", method))


def _bar(row: Mapping[str, Any], metric: str, mean: float, std: float | None) -> tuple[float, float]:
    """(below, above) the mean: the 95 % interval where the row has one, else +- std over seeds."""
    ci = metric_interval(row, metric)
    if ci is not None:
        return max(mean - ci[0], 0.0), max(ci[1] - mean, 0.0)
    return (std or 0.0, std or 0.0)


def _clean(rows: Rows, metric: str) -> tuple[float | None, tuple[float, float] | None]:
    for row in rows:
        if row.get("mode") == "clean":
            mean, std = metric_stat(row, metric)
            if mean is not None:
                return mean, _bar(row, metric, mean, std)
    return None, None


def _series(rows: Rows, mode: str, method: str, metric: str) -> list[tuple[float, float, float, float]]:
    """(ratio, mean, below, above) points of one method, by ratio (error bar: the 95 % interval, else the std
    over seeds); a repeated ratio keeps the last row."""
    points: dict[float, tuple[float, float, float]] = {}
    for row in rows:
        if row.get("mode") != mode or row.get("method") != method:
            continue
        ratio = as_float(row.get("ratio"))
        mean, std = metric_stat(row, metric)
        if ratio is None or mean is None:
            continue
        if ratio in points:
            log.warning(
                "two %s/%s rows at ratio %g: plotting the later one (%s)",
                mode,
                method,
                ratio,
                row.get("variant"),
            )
        points[ratio] = (mean, *_bar(row, metric, mean, std))
    return [(r, *v) for r, v in sorted(points.items())]


def plot_metric(rows: Rows, mode: str, metric: str, out_path: Path) -> Path | None:
    """Accuracy of `metric` vs edit ratio for one mode; None (nothing written) when no row has it."""
    methods = methods_in([r for r in rows if r.get("mode") == mode])
    series = {m: _series(rows, mode, m, metric) for m in methods}
    series = {m: pts for m, pts in series.items() if pts}
    if not series:
        return None
    ratios = sorted({pt[0] for pts in series.values() for pt in pts})
    span = ratios[-1] - ratios[0]
    # methods at the same ratio are dodged sideways a little so their error bars stay apart
    dodge = 0.012 * span if span > 0 else 0.04 * max(abs(ratios[0]), 1.0)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    clean_mean, clean_bar = _clean(rows, metric)
    if clean_mean is not None:
        ax.axhline(
            clean_mean, color="black", linestyle="--", linewidth=1.2, label=f"clean ({clean_mean:.3f})"
        )
        if clean_bar and any(clean_bar):
            ax.axhspan(
                clean_mean - clean_bar[0], clean_mean + clean_bar[1], color="black", alpha=0.07, linewidth=0
            )
    for i, (method, pts) in enumerate(series.items()):
        color, marker, label = _style(method, i)
        offset = (i - (len(series) - 1) / 2) * dodge
        xs = [pt[0] + offset for pt in pts]
        ax.errorbar(
            xs,
            [pt[1] for pt in pts],
            yerr=[[pt[2] for pt in pts], [pt[3] for pt in pts]],
            color=color,
            marker=marker,
            markersize=6,
            linewidth=1.6,
            capsize=4,
            label=label,
        )
    ax.set_xticks(ratios)
    ax.set_xticklabels([f"{r:g}" for r in ratios])
    if len(ratios) == 1:
        ax.set_xlim(ratios[0] - 6 * dodge, ratios[0] + 6 * dodge)
    ax.set_xlabel("edited pairs q (% of the training set)")
    ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} accuracy")
    ax.set_title(f"{MODE_TITLES.get(mode, mode)}\n{METRIC_LABELS.get(metric, metric)}", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9, loc="best")
    return _save(fig, out_path)


def plot_sweep(rows: Rows, out_dir: Path) -> list[Path]:
    """For poisoning and denoising separately: Safety, Chat (and Chat Hard, Reasoning, held-out and pool safety
    and chat, every extra evaluation set, where present) accuracy vs ratio, one line per method, error bars =
    the 95 % interval (else the std over seeds), the clean model as a dashed line with its interval shaded. A mode
    or metric without rows is skipped. Files: `<mode>_<metric>.png`, e.g. `poison_safety.png`."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    known = {m for m, _ in SWEEP_METRICS}
    extra = [(m, slug(m)) for m in metric_names(rows) if m not in known and m != "overall"]
    for mode in ("poison", "denoise"):
        if not any(r.get("mode") == mode for r in rows):
            continue
        for metric, part in (*SWEEP_METRICS, *extra):
            path = plot_metric(rows, mode, metric, out_dir / f"{mode}_{part}.png")
            if path is not None:
                written.append(path)
    log.info("wrote %d sweep plots to %s", len(written), out_dir)
    return written
