"""PNG plots of a ratio sweep (accuracy vs edit ratio, one line per selection method, the clean model as a
dashed line) and of feature salience. Figures are built with matplotlib's object API (no pyplot, no global
backend switch, no display) and written atomically."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..io import write_bytes
from .dashboard import latent_key, membership, rank_key
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
}
METHOD_STYLE = {
    "safer": ("#c0392b", "o", "SAFER"),
    "random": ("#7f8c8d", "s", "random"),
    "reward_margin": ("#2e86c1", "^", "reward margin"),
}
EXTRA_COLORS = ("#8e44ad", "#d68910", "#17a589", "#5d6d7e")
SAFE_COLOR, UNSAFE_COLOR, OTHER_COLOR = "#1b7f4b", "#b3261e", "#b8c0c8"

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


def plot_salience(features: Mapping[str, Any], out_path: Path) -> Path | None:
    """Salience of the examined latents by rank, the selected safe (S+) and unsafe (S-) ones highlighted.
    None (nothing written) when no latent has a salience."""
    member = membership(features)  # the dashboard's sets and order, so the two never disagree
    recs = sorted(
        (
            r
            for r in features.get("latents") or []
            if as_float(r.get("salience")) is not None and r.get("latent") is not None
        ),
        key=rank_key,
    )
    if not recs:
        return None
    saliences = [as_float(r["salience"]) for r in recs]
    latents = [latent_key(r["latent"]) for r in recs]
    xs = list(range(1, len(recs) + 1))
    color = {"safe": SAFE_COLOR, "unsafe": UNSAFE_COLOR}
    colors = [color.get(member.get(lat), OTHER_COLOR) for lat in latents]
    fig = Figure(figsize=(min(12.0, 5.0 + 0.04 * len(recs)), 3.8))
    ax = fig.subplots()
    ax.bar(xs, saliences, color=colors, width=0.85)
    ax.axhline(0, color="black", linewidth=0.8)
    if len(recs) <= 40:
        ax.set_xticks(xs)
        ax.set_xticklabels(latents, rotation=90, fontsize=7)
        ax.set_xlabel("latent (by rank of |salience|)")
    else:
        ax.set_xlabel("rank of |salience|")
    ax.set_ylabel("salience  (C - R) / (C + R + 2m)")
    ax.set_title(f"Salience of the {len(recs)} examined latents", fontsize=11)
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in (SAFE_COLOR, UNSAFE_COLOR, OTHER_COLOR)]
    ax.legend(handles, ["selected safe (S+)", "selected unsafe (S-)", "not selected"], fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, Path(out_path))


def plot_reward_effect(features: Mapping[str, Any], out_path: Path) -> Path | None:
    """Each examined latent's mean margin effect (reward attribution, chosen minus rejected) on safety pairs
    against chat pairs, the selected sets highlighted: a safety-specific latent lies far from 0 vertically and
    near 0 horizontally. None when the run has no attribution."""
    member = membership(features)
    points = []
    for r in features.get("latents") or []:
        effect = r.get("reward_effect")
        if not isinstance(effect, Mapping) or r.get("latent") is None:
            continue
        x, y = as_float(effect.get("margin_effect_chat")), as_float(effect.get("margin_effect_safety"))
        if x is not None and y is not None:
            points.append((x, y, member.get(latent_key(r["latent"]))))
    if not points:
        return None
    fig = Figure(figsize=(5.6, 5.0))
    ax = fig.subplots()
    for kind, color, label in (
        (None, OTHER_COLOR, "not selected"),
        ("safe", SAFE_COLOR, "selected safe (S+)"),
        ("unsafe", UNSAFE_COLOR, "selected unsafe (S-)"),
    ):
        xs = [p[0] for p in points if p[2] == kind]
        ys = [p[1] for p in points if p[2] == kind]
        if xs:
            ax.scatter(
                xs,
                ys,
                s=18 if kind else 10,
                color=color,
                label=f"{label} ({len(xs)})",
                zorder=3 if kind else 2,
            )
    lim = max(max(abs(p[0]), abs(p[1])) for p in points) * 1.05 or 1.0
    ax.plot([-lim, lim], [-lim, lim], color="black", linewidth=0.6, linestyle=":", label="equal effect")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("mean margin effect on chat pairs")
    ax.set_ylabel("mean margin effect on safety pairs")
    ax.set_title(f"Reward attribution of the {len(points)} examined latents", fontsize=11)
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, alpha=0.3)
    return _save(fig, Path(out_path))


def plot_audit(audit: Mapping[str, Any], out_path: Path) -> Path | None:
    """The poisoning audit: each detector's AUROC on the planted flips, over all pairs and over safety pairs
    alone, with 95 % bootstrap intervals; chance (0.5) dashed. None when the audit has no detectors."""
    detectors = audit.get("detectors") or {}
    if not detectors:
        return None
    names = list(detectors)
    xs = list(range(len(names)))
    fig = Figure(figsize=(max(5.5, 1.1 * len(names) + 2), 3.8))
    ax = fig.subplots()
    for j, (pop, label) in enumerate((("all", "all pairs"), ("safety", "safety pairs"))):
        vals, low, high = [], [], []
        for d in names:
            v = (detectors[d].get(pop) or {}).get("auroc") or {}
            x = as_float(v.get("value"))
            vals.append(x if x is not None else float("nan"))
            low.append(x - as_float(v["low"]) if x is not None and as_float(v.get("low")) is not None else 0)
            high.append(
                as_float(v["high"]) - x if x is not None and as_float(v.get("high")) is not None else 0
            )
        ax.bar([x + (j - 0.5) * 0.38 for x in xs], vals, width=0.38, yerr=[low, high], capsize=3, label=label)
    ax.axhline(0.5, color="black", linestyle="--", linewidth=0.8)
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=20, fontsize=8)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("AUROC on planted flips")
    repeats = audit.get("repeats", 1)
    ax.set_title(
        f"Poisoning audit: {audit.get('q')} % flips planted among {audit.get('scope', 'all')} pairs, "
        f"{repeats} repeat{'s' if repeats != 1 else ''}",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, Path(out_path))
