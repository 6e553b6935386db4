"""Small HTML helpers shared by the report and the feature dashboard: escaping, number formatting, key/value
tables and the page skeleton. Every piece of text that reaches a page goes through `esc` (or `esc_text`);
judge replies and dataset text are untrusted and may hold markup."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

DASH = "\u2013"


def esc(value: Any) -> str:
    """`value` as text, HTML-escaped including both quote characters (safe in text and attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


def esc_text(value: Any) -> str:
    """Like `esc`, with newlines shown as a visible marker so a context stays on a few compact lines."""
    return esc(value).replace("\r\n", "\n").replace("\n", '<span class="nl">\u21b5</span>')


def as_float(value: Any) -> float | None:
    """A finite or non-finite float, or None for anything that is not a number (bools count as not)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fmt3(value: Any) -> str:
    """Three decimals (`0.713`), a dash for a missing value."""
    x = as_float(value)
    return DASH if x is None else f"{x:.3f}"


def fmt_signed(value: Any) -> str:
    x = as_float(value)
    return DASH if x is None else f"{x:+.3f}"


def fmt_ratio(value: Any) -> str:
    """An edit ratio in percent, as short as it goes (`0.5`, `5`)."""
    x = as_float(value)
    return DASH if x is None else f"{x:g}"


def fmt_value(value: Any) -> str:
    """A summary value: integers as they are, floats to four significant digits (one decimal above 1000)."""
    if value is None:
        return DASH
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(v) for v in value)
    return str(value)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as dotted keys, in insertion order."""
    out: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(flatten(value, f"{name}.") if value else [(name, "{}")])
        else:
            out.append((name, value))
    return out


def kv_table(mapping: Mapping[str, Any]) -> str:
    """A two-column key/value table of a (possibly nested) dict of numbers and strings."""
    rows = []
    for key, value in flatten(mapping):
        cls = ' class="num"' if as_float(value) is not None else ""
        rows.append(f"<tr><th>{esc(key)}</th><td{cls}>{esc(fmt_value(value))}</td></tr>")
    return '<table class="kv">' + "".join(rows) + "</table>"


def html_table(
    header: Iterable[str],
    rows: Iterable[Iterable[str]],
    numeric: Iterable[int] = (),
    row_classes: Iterable[str] | None = None,
    css_class: str = "",
) -> str:
    """A table from already-escaped cell HTML; `numeric` column indices are right-aligned."""
    numeric = set(numeric)
    num = ' class="num"'
    head = "".join(f"<th{num if i in numeric else ''}>{h}</th>" for i, h in enumerate(header))
    body = []
    classes = list(row_classes) if row_classes is not None else None
    for r, row in enumerate(rows):
        cls = f' class="{esc(classes[r])}"' if classes and classes[r] else ""
        cells = "".join(f"<td{num if i in numeric else ''}>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    table = f'<table class="{esc(css_class)}">' if css_class else "<table>"
    return f"{table}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


@cache
def stylesheet() -> str:
    return resources.files(__package__).joinpath("style.css").read_text(encoding="utf-8")


def page(title: str, body: str) -> str:
    """A complete self-contained page: inline CSS, no scripts, no external resources."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>\n{stylesheet()}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
