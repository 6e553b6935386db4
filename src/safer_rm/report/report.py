"""The run report: `runs/<name>/report/index.html` with the results table, the source mix of every edited
set, the sweep plots (PNG files beside it), the summary's sections as key/value tables, and a link to the
feature dashboard (`features.html`) when features exist; `results.csv` beside it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..io import write_text
from .dashboard import write_dashboard
from .feature_plots import plot_audit, plot_reward_effect, plot_salience
from .page import esc, page
from .plots import METRIC_LABELS, MODE_TITLES, SWEEP_METRICS, plot_sweep
from .sections import (
    AUDIT_PNG,
    DASHBOARD,
    EFFECT_PNG,
    SALIENCE_PNG,
    _audit_section,
    _features_section,
    _img,
    _summary_sections,
)
from .tables import diff_html, sizes_text, source_mix_html, to_csv, to_html

log = logging.getLogger(__name__)

REPORT_DIR = "report"
INDEX, CSV = "index.html", "results.csv"

Rows = Sequence[Mapping[str, Any]]


def _figure(path: Path) -> str:
    mode, _, part = path.stem.partition("_")
    metric = next((m for m, p in SWEEP_METRICS if p == part), part)
    return _img(path.name, f"{MODE_TITLES.get(mode, mode)}: {METRIC_LABELS.get(metric, metric)}")


def _remove_stale_plots(out: Path, written: Sequence[Path]) -> None:
    """Sweep plots left by an earlier report whose mode or metric is gone now."""
    keep = {p.name for p in written}
    for mode in ("poison", "denoise"):
        for path in out.glob(f"{mode}_*.png"):  # extra evaluation sets have plots of their own names
            if path.name not in keep:
                path.unlink()


def render_report(
    rows: Rows,
    summary: Mapping[str, Any],
    plots: Sequence[Path],
    title: str,
    features: Mapping[str, Any] | None = None,
    has_salience: bool = False,
    has_audit_plot: bool = False,
) -> str:
    """The report page as a string; `plots` are PNG files in the report directory (linked by name)."""
    parts = [
        f"<h1>{esc(title)}</h1>",
        '<nav class="toc"><a href="#results">results</a><a href="#differences">differences</a><a href="#edits">edited sets</a>'
        '<a href="#plots">plots</a><a href="#features">features</a><a href="#audit">audit</a><a href="#summary">summary</a>'
        f'<a href="{CSV}">results.csv</a>'
        + (f'<a href="{DASHBOARD}">feature dashboard</a>' if features else "")
        + "</nav>",
        '<h2 id="results">Results</h2>',
        '<p class="muted small">Accuracy (0..1), mean over seeds with its 95 % bootstrap interval (seeds, then '
        "pairs; mean &plusmn; std over seeds where per-pair outcomes are missing); ratio = edited pairs in % of "
        "the training set.</p>",
        to_html(rows) if rows else '<p class="muted">no results yet</p>',
    ]
    sizes = sizes_text(rows)
    if sizes:
        parts.append(f'<p class="muted small">Evaluation pairs: {esc(sizes)}.</p>')
    diffs = diff_html(rows)
    parts += [
        '<h2 id="differences">Differences</h2>',
        '<p class="muted small">Variant minus the one named, in points (accuracy &times; 100), with a 95 % paired '
        "bootstrap interval over evaluation pairs (with several seeds: seeds, then pairs); bold where it excludes "
        "0; hover for the paired test's p-value.</p>",
        diffs or '<p class="muted">nothing to compare yet</p>',
    ]
    mix = source_mix_html(rows)
    parts += [
        '<h2 id="edits">Edited sets: pairs edited per source</h2>',
        mix or '<p class="muted">no edited sets</p>',
    ]
    parts.append('<h2 id="plots">Plots</h2>')
    if not plots:
        parts.append('<p class="muted">no sweep to plot</p>')
    for mode in ("poison", "denoise"):
        figs = [p for p in plots if p.stem.startswith(f"{mode}_")]
        if figs:
            parts.append(f"<h3>{esc(MODE_TITLES.get(mode, mode))}</h3>")
            parts.append('<div class="plots">' + "".join(_figure(p) for p in figs) + "</div>")
    parts.append('<h2 id="features">Features</h2>')
    parts.append(
        _features_section(features, has_salience)
        if features
        else '<p class="muted">no feature selection in this run</p>'
    )
    if isinstance(summary.get("audit"), Mapping):
        parts.append('<h2 id="audit">Poisoning audit: detectors of planted flips</h2>')
        parts.append(_audit_section(summary["audit"], has_audit_plot))
    parts.append('<h2 id="summary">Summary</h2>')
    parts.append(_summary_sections(summary) if summary else '<p class="muted">no summary</p>')
    return page(title, "\n".join(parts))


def write_report(
    run_dir: Path,
    rows: Rows,
    summary: Mapping[str, Any] | None = None,
    features: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> Path:
    """Write `run_dir/report/`: index.html, results.csv, the sweep plots, and, when `features` is given, the
    dashboard features.html and salience.png. Returns the path of index.html."""
    run_dir = Path(run_dir)
    out = run_dir / REPORT_DIR
    summary = summary or {}
    title = title or f"safer-rm report: {summary.get('run') or run_dir.name}"
    write_text(out / CSV, to_csv(rows))
    plots = plot_sweep(rows, out)
    _remove_stale_plots(out, plots)
    has_salience = False
    audit = summary.get("audit")
    has_audit_plot = isinstance(audit, Mapping) and plot_audit(audit, out / AUDIT_PNG) is not None
    if features:
        write_dashboard(features, out / DASHBOARD, title=f"Features: {summary.get('run') or run_dir.name}")
        has_salience = plot_salience(features, out / SALIENCE_PNG) is not None
        if plot_reward_effect(features, out / EFFECT_PNG) is None and (out / EFFECT_PNG).exists():
            (out / EFFECT_PNG).unlink()  # an earlier run's, its attribution since switched off
    index = out / INDEX
    write_text(
        index,
        render_report(
            rows,
            summary,
            plots,
            title,
            features=features,
            has_salience=has_salience,
            has_audit_plot=has_audit_plot,
        ),
    )
    log.info("wrote the report (%d result rows, %d plots) to %s", len(rows), len(plots), index)
    return index
