"""Reports: the results table, plots, the HTML report and the feature dashboard."""

from .dashboard import render_dashboard, write_dashboard
from .html import write_report
from .plots import plot_salience, plot_sweep
from .tables import html_table, text_table, to_csv

__all__ = ["html_table", "plot_salience", "plot_sweep", "render_dashboard", "text_table", "to_csv",
           "write_dashboard", "write_report"]
