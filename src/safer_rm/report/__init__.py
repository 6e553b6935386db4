"""Reports of a run: the results table (CSV, terminal, HTML), sweep plots, the feature dashboard and the
run report `runs/<name>/report/index.html` that ties them together."""

from .dashboard import render_dashboard, write_dashboard
from .plots import plot_metric, plot_salience, plot_sweep
from .report import render_report, write_report
from .tables import source_mix_html, to_csv, to_html, to_text

__all__ = [
    "plot_metric",
    "plot_salience",
    "plot_sweep",
    "render_dashboard",
    "render_report",
    "source_mix_html",
    "to_csv",
    "to_html",
    "to_text",
    "write_dashboard",
    "write_report",
]
