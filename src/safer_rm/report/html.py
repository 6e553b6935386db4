"""The run report: results table, plots, the analyses' numbers, and a link to the feature dashboard."""

from __future__ import annotations

from html import escape
from pathlib import Path

from ..io import write_text
from .dashboard import write_dashboard
from .plots import plot_salience, plot_sweep
from .style import CSS
from .tables import html_table, to_csv


def _kv(title: str, data: dict) -> str:
    rows = []
    for k, v in data.items():
        if isinstance(v, dict | list):
            v = ", ".join(f"{a}: {b}" for a, b in v.items()) if isinstance(v, dict) else ", ".join(map(str, v))
        elif isinstance(v, float):
            v = f"{v:.3f}"
        rows.append(f"<tr><td>{escape(str(k))}</td><td>{escape(str(v))}</td></tr>")
    return f"<h2>{escape(title)}</h2><table class='kv'>{''.join(rows)}</table>"


def write_report(run_dir: str | Path, rows: list[dict], summary: dict, features: dict | None = None) -> Path:
    """<run>/report/index.html with plots beside it, results.csv, and features.html when features exist."""
    out = Path(run_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.csv", to_csv(rows))
    plots = plot_sweep(rows, out)
    parts = [f"<h1>SAFER run: {escape(str(summary.get('run', '')))}</h1>",
             "<p>Accuracies in 0..1 (RewardBench sections, held-out in-distribution pairs); "
             "mean &plusmn; std over seeds. <a href='results.csv'>results.csv</a></p>", html_table(rows)]
    if features:
        write_dashboard(features, out / "features.html")
        plots.append(plot_salience(features, out / "salience.png"))
        sel = features.get("selection", {})
        parts.append(f"<h2>Safety features</h2><p><a href='features.html'>Feature dashboard</a>: "
                     f"{len(sel.get('safe', []))} safe and {len(sel.get('unsafe', []))} unsafe features selected "
                     f"(judge {escape(str(features.get('judge', {}).get('kind', '')))}).</p>")
    if plots:
        parts.append("<h2>Plots</h2><div class='plots'>" +
                     "".join(f"<img src='{escape(p.name)}' alt='{escape(p.stem)}'>" for p in plots) + "</div>")
    for key, title in (("sae", "Sparse autoencoder"), ("features", "Features"), ("scores", "Pair scores"),
                       ("causal", "Causal test (latents zeroed, reconstruction error kept)"),
                       ("audit", "Poisoning audit"), ("data", "Data")):
        if isinstance(summary.get(key), dict):
            parts.append(_kv(title, summary[key]))
    timing = summary.get("timing", {})
    if timing:
        parts.append(_kv("Timing (seconds)", {"total": timing.get("total_s"), **timing.get("stages", {})}))
    html = (f"<!doctype html><html><head><meta charset='utf-8'><title>SAFER report</title><style>{CSS}</style>"
            f"</head><body>{''.join(parts)}</body></html>")
    write_text(out / "index.html", html)
    return out / "index.html"
