"""Result rows as a CSV file, a plain-text table for the terminal, and HTML tables (results, source mix)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from .page import DASH, as_float, esc, fmt3, fmt_ratio, html_table
from .rows import (
    compared_metrics,
    comparisons,
    has_spread,
    metric_interval,
    metric_names,
    metric_stat,
    sorted_rows,
    source_mix,
    sources_in,
)

ID_COLUMNS = ("variant", "mode", "method", "ratio", "n_seeds")
Rows = Sequence[Mapping[str, Any]]


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def to_csv(rows: Rows) -> str:
    """One line per row: variant, mode, method, ratio, n_seeds, then per metric its mean, std over seeds, 95 %
    interval (low, high) and evaluation pairs (n); then per compared variant (`clean`, other methods) and metric
    the paired difference, its interval and p-value; then the source mix as `source=count;...`. Missing values
    are empty; numbers keep full precision."""
    metrics = metric_names(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    compared = compared_metrics(rows)
    others = sorted({o for _, o, _ in comparisons(rows)})
    header = [*ID_COLUMNS]
    for m in metrics:
        header += [m, f"{m} std", f"{m} low", f"{m} high", f"{m} n"]
    for o in others:
        for m in compared:
            header += [f"{m} - {o}", f"{m} - {o} low", f"{m} - {o} high", f"{m} - {o} p"]
    writer.writerow([*header, "source_mix"])
    for row in sorted_rows(rows):
        stats = []
        for m in metrics:
            value = (row.get("metrics") or {}).get(m)
            extra = value if isinstance(value, Mapping) else {}
            stats += [_cell(v) for v in metric_stat(row, m)]
            stats += [_cell(extra.get("low")), _cell(extra.get("high")), _cell(extra.get("n"))]
        for o in others:
            diffs = (row.get("compare") or {}).get(o) or {}
            for m in compared:
                d = diffs.get(m) or {}
                stats += [_cell(d.get(k)) for k in ("diff", "low", "high", "p")]
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


def mean_ci(row: Mapping[str, Any], metric: str, short: bool = False) -> str:
    """`0.713 [0.690, 0.737]` (the 95 % interval), or `0.713 ±0.024` (its larger half-width) when `short`;
    mean ± std over seeds where there is no interval."""
    mean, _ = metric_stat(row, metric)
    ci = metric_interval(row, metric)
    if mean is None or ci is None:
        return mean_std(row, metric, sep=" +- " if short else " \u00b1 ")
    if short:
        return f"{fmt3(mean)} +-{max(mean - ci[0], ci[1] - mean):.3f}"
    return f"{fmt3(mean)} [{fmt3(ci[0])}, {fmt3(ci[1])}]"


def diff_cell(d: Mapping[str, Any] | None, html_sep: bool = False) -> str:
    """A paired difference in points (accuracy x 100): `-5.2 [-8.1, -2.4]*`, `*` when the interval excludes 0."""
    if not d or as_float(d.get("diff")) is None:
        return DASH
    mark = "*" if d.get("excludes_zero") else ""
    return f"{100 * d['diff']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]{mark}"


def _fixed(header: list[str], lines: list[list[str]], left: int) -> str:
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)
    ]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in lines)]) + "\n"


def diff_text(rows: Rows) -> str:
    """Paired differences for the terminal: one line per (variant, compared with), one column per metric."""
    metrics = compared_metrics(rows)
    lines = [
        [str(row.get("variant", "")), other, *(diff_cell(d.get(m)) for m in metrics)]
        for row, other, d in comparisons(rows)
    ]
    if not lines:
        return ""
    return _fixed(["variant", "minus", *metrics], lines, left=2)


def sizes_text(rows: Rows) -> str:
    """`Safety n=244, heldout safety n=139, ...`: the evaluation pairs behind every metric."""
    sizes: dict[str, Any] = {}
    for row in rows:
        for m, v in (row.get("metrics") or {}).items():
            if isinstance(v, Mapping) and v.get("n") is not None:
                sizes.setdefault(m, v["n"])
    return ", ".join(f"{m} n={sizes[m]}" for m in metric_names(rows) if m in sizes)


def to_text(rows: Rows) -> str:
    """Fixed-width tables for the terminal: accuracies (mean, +- the 95 % interval's half-width, or +- std
    over seeds where there is no interval), the evaluation sizes, then the paired differences."""
    metrics = metric_names(rows)
    header = ["variant", "mode", "method", "ratio", "seeds", *metrics]
    lines = [
        [
            str(row.get("variant", "")),
            str(row.get("mode") or ""),
            str(row.get("method") or DASH),
            fmt_ratio(row.get("ratio")),
            _cell(row.get("n_seeds")) or DASH,
            *(mean_ci(row, m, short=True) for m in metrics),
        ]
        for row in sorted_rows(rows)
    ]
    out = _fixed(header, lines, left=3)
    sizes = sizes_text(rows)
    if sizes:
        out += f"evaluation pairs: {sizes}\n"
    diffs = diff_text(rows)
    if diffs:
        out += (
            "\ndifferences in points (accuracy x 100), variant minus the one named, 95 % paired bootstrap interval"
            " (seeds, then pairs, with several seeds); * where it excludes 0:\n" + diffs
        )
    return out


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
            *(esc(mean_ci(row, m)) for m in metrics),
        ]
        for row in ordered
    ]
    numeric = range(3, len(header))
    classes = ["clean" if row.get("mode") == "clean" else "" for row in ordered]
    return html_table(header, body, numeric=numeric, row_classes=classes, css_class="results")


def diff_html(rows: Rows) -> str:
    """The paired differences as an HTML table (points; interval; p-value on hover), empty without any."""
    metrics = compared_metrics(rows)
    found = comparisons(rows)
    if not found:
        return ""
    header = [esc(h) for h in ("variant", "minus", *metrics)]
    body = []
    for row, other, diffs in found:
        cells = []
        for m in metrics:
            d = diffs.get(m)
            text = esc(diff_cell(d))
            if d and d.get("excludes_zero"):
                text = f"<strong>{text}</strong>"
            if d and as_float(d.get("p")) is not None:
                text = f'<span title="p = {d["p"]:.3g} ({esc(d.get("test", ""))}), n = {esc(d.get("n"))}">{text}</span>'
            cells.append(text)
        body.append([esc(row.get("variant", "")), esc(other), *cells])
    return html_table(header, body, numeric=range(2, len(header)), css_class="results")


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
