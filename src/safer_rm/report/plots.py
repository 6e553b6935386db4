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
from .rows import methods_in, metric_stat

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
)
"""(metric, file-name part) plotted per mode when present: `<mode>_<part>.png`."""
METRIC_LABELS = {
    "Safety": "RewardBench Safety",
    "Chat": "RewardBench Chat",
    "Chat Hard": "RewardBench Chat Hard",
    "Reasoning": "RewardBench Reasoning",
    "heldout safety": "held-out safety pairs",
    "heldout chat": "held-out chat pairs",
}
METHOD_STYLE = {
    "safer": ("#c0392b", "o", "SAFER"),
    "random": ("#7f8c8d", "s", "random"),
    "reward_margin": ("#2e86c1", "^", "reward margin"),
}
EXTRA_COLORS = ("#8e44ad", "#d68910", "#17a589", "#5d6d7e")
SAFE_COLOR, UNSAFE_COLOR, OTHER_COLOR = "#1b7f4b", "#b3261e", "#b8c0c8"

Rows = Sequence[Mapping[str, Any]]


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    write_bytes(path, buf.getvalue())
    return path


def _style(method: str, i: int) -> tuple[str, str, str]:
    return METHOD_STYLE.get(method, (EXTRA_COLORS[i % len(EXTRA_COLORS)], "D", method))


def _clean(rows: Rows, metric: str) -> tuple[float | None, float | None]:
    for row in rows:
        if row.get("mode") == "clean":
            mean, std = metric_stat(row, metric)
            if mean is not None:
                return mean, std
    return None, None


def _series(rows: Rows, mode: str, method: str, metric: str) -> list[tuple[float, float, float]]:
    """(ratio, mean, std) points of one method, by ratio; a repeated ratio keeps the last row."""
    points: dict[float, tuple[float, float]] = {}
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
        points[ratio] = (mean, std or 0.0)
    return [(r, m, s) for r, (m, s) in sorted(points.items())]


def plot_metric(rows: Rows, mode: str, metric: str, out_path: Path) -> Path | None:
    """Accuracy of `metric` vs edit ratio for one mode; None (nothing written) when no row has it."""
    methods = methods_in([r for r in rows if r.get("mode") == mode])
    series = {m: _series(rows, mode, m, metric) for m in methods}
    series = {m: pts for m, pts in series.items() if pts}
    if not series:
        return None
    ratios = sorted({r for pts in series.values() for r, _, _ in pts})
    span = ratios[-1] - ratios[0]
    # methods at the same ratio are dodged sideways a little so their error bars stay apart
    dodge = 0.012 * span if span > 0 else 0.04 * max(abs(ratios[0]), 1.0)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    clean_mean, clean_std = _clean(rows, metric)
    if clean_mean is not None:
        ax.axhline(
            clean_mean, color="black", linestyle="--", linewidth=1.2, label=f"clean ({clean_mean:.3f})"
        )
        if clean_std:
            ax.axhspan(clean_mean - clean_std, clean_mean + clean_std, color="black", alpha=0.07, linewidth=0)
    for i, (method, pts) in enumerate(series.items()):
        color, marker, label = _style(method, i)
        offset = (i - (len(series) - 1) / 2) * dodge
        xs = [r + offset for r, _, _ in pts]
        ax.errorbar(
            xs,
            [m for _, m, _ in pts],
            yerr=[s for _, _, s in pts],
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
    """For poisoning and denoising separately: Safety, Chat (and Chat Hard, Reasoning, held-out safety and chat
    where present) accuracy vs ratio, one line per method, error bars = std over seeds, the clean model as a
    dashed line. A mode or metric without rows is skipped. Files: `<mode>_<metric>.png`, e.g. `poison_safety.png`."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    for mode in ("poison", "denoise"):
        if not any(r.get("mode") == mode for r in rows):
            continue
        for metric, part in SWEEP_METRICS:
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
