"""Result rows as a CSV file, a plain-text table for the terminal, and HTML tables (results, source mix)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from .page import DASH, esc, fmt3, fmt_ratio, html_table
from .rows import has_spread, metric_names, metric_stat, sorted_rows, source_mix, sources_in

ID_COLUMNS = ("variant", "mode", "method", "ratio", "n_seeds")
Rows = Sequence[Mapping[str, Any]]


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def to_csv(rows: Rows) -> str:
    """One line per row: variant, mode, method, ratio, n_seeds, then `<metric>` (mean) and `<metric> std` for
    every metric, then the source mix as `source=count;...`. Missing values are empty; numbers keep full precision."""
    metrics = metric_names(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*ID_COLUMNS, *[c for m in metrics for c in (m, f"{m} std")], "source_mix"])
    for row in sorted_rows(rows):
        stats = [_cell(v) for m in metrics for v in metric_stat(row, m)]
        mix = ";".join(f"{k}={v}" for k, v in source_mix(row).items())
        writer.writerow([*(_cell(row.get(c)) for c in ID_COLUMNS), *stats, mix])
    return out.getvalue()


def fmt_count(value: Any) -> str:
    if value is None:
        return DASH
    return f"{value:g}" if isinstance(value, float) else str(value)


def mean_std(row: Mapping[str, Any], metric: str, sep: str = " \u00b1 ") -> str:
    """`0.713 ± 0.012`, `0.713` without a spread (one seed), a dash when the metric is absent."""
    mean, std = metric_stat(row, metric)
    if mean is None:
        return DASH
    return f"{fmt3(mean)}{sep}{fmt3(std)}" if has_spread(row, std) else fmt3(mean)


def to_text(rows: Rows) -> str:
    """A fixed-width table for the terminal: mean ± std to three decimals."""
    metrics = metric_names(rows)
    header = ["variant", "mode", "method", "ratio", "seeds", *metrics]
    lines = [
        [
            str(row.get("variant", "")),
            str(row.get("mode") or ""),
            str(row.get("method") or DASH),
            fmt_ratio(row.get("ratio")),
            _cell(row.get("n_seeds")) or DASH,
            *(mean_std(row, m, sep=" +- ") for m in metrics),
        ]
        for row in sorted_rows(rows)
    ]
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)
    ]
    left = 3  # the identifier columns are left-aligned, the numbers right-aligned

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in lines)]) + "\n"


def to_html(rows: Rows) -> str:
    """The results as an HTML table (every cell escaped), clean rows shaded."""
    metrics = metric_names(rows)
    ordered = sorted_rows(rows)
    header = [esc(h) for h in ("variant", "mode", "method", "ratio %", "seeds", *metrics)]
    body = [
        [
            esc(row.get("variant", "")),
            esc(row.get("mode") or ""),
            esc(row.get("method") or DASH),
            esc(fmt_ratio(row.get("ratio"))),
            esc(_cell(row.get("n_seeds")) or DASH),
            *(esc(mean_std(row, m)) for m in metrics),
        ]
        for row in ordered
    ]
    numeric = range(3, len(header))
    classes = ["clean" if row.get("mode") == "clean" else "" for row in ordered]
    return html_table(header, body, numeric=numeric, row_classes=classes, css_class="results")


def source_mix_html(rows: Rows) -> str:
    """Edited pairs per source for every edited set (rows with a source mix); empty when there is none."""
    edited = [row for row in sorted_rows(rows) if source_mix(row)]
    if not edited:
        return ""
    sources = sources_in(edited)
    header = [esc(h) for h in ("variant", *sources, "total")]
    body = []
    for row in edited:
        mix = source_mix(row)
        counts = [mix.get(s, 0) for s in sources]  # a source absent from a set's mix had no pair edited
        numbers = [c for c in counts if isinstance(c, int | float) and not isinstance(c, bool)]
        total = sum(numbers) if len(numbers) == len(counts) else None
        body.append(
            [esc(row.get("variant", "")), *(esc(fmt_count(c)) for c in counts), esc(fmt_count(total))]
        )
    return html_table(header, body, numeric=range(1, len(header)), css_class="results")
