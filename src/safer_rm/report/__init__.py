"""Reports of a run: the results table (CSV, terminal, HTML), sweep plots, the feature dashboard and the
run report `runs/<name>/report/index.html` that ties them together."""

from ..lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "render_dashboard": "dashboard",
        "write_dashboard": "dashboard",
        "plot_metric": "plots",
        "plot_salience": "feature_plots",
        "plot_sweep": "plots",
        "render_report": "report",
        "write_report": "report",
        "source_mix_html": "tables",
        "to_csv": "tables",
        "to_html": "tables",
        "to_text": "tables",
    },
)

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
