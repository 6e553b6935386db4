"""Reading the experiment runner's result rows: metric order, mean/std of a metric, a stable row order.

A row is `{"variant", "mode": "clean"|"poison"|"denoise", "method", "ratio", "n_seeds",
"metrics": {name: {"mean", "std", "low", "high", "n"}}, "compare": {other variant: {name: paired difference}},
"source_mix": {source: edited pairs}}`; any metric may be absent, std is 0.0 or None with one seed, and low/high
(the 95 % interval) and n (evaluation pairs) are there when per-pair outcomes were."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..curation.variants import Variant
from .page import as_float

MODES = ("clean", "poison", "denoise")
METHODS = ("safer", "random", "reward_margin")
METRICS = (
    "Chat",
    "Chat Hard",
    "Safety",
    "Reasoning",
    "overall",
    "heldout safety",
    "heldout chat",
    "pool safety",
    "pool chat",
    "rewardbench2 Factuality",
    "rewardbench2 Precise IF",
    "rewardbench2 Math",
    "rewardbench2 Safety",
    "rewardbench2 Focus",
    "rewardbench2 Ties",
    "rewardbench2 overall",
)
"""Known metrics in display order; others follow in the order first seen."""


def metric_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        for name in row.get("metrics") or {}:
            if name not in seen:
                seen.append(name)
    known = [m for m in METRICS if m in seen]
    return known + [m for m in seen if m not in METRICS]


def metric_stat(row: Mapping[str, Any], name: str) -> tuple[float | None, float | None]:
    """(mean, std) of a metric; (None, None) when absent. A bare number counts as a mean without spread."""
    value = (row.get("metrics") or {}).get(name)
    if isinstance(value, Mapping):
        return as_float(value.get("mean")), as_float(value.get("std"))
    return as_float(value), None


def metric_interval(row: Mapping[str, Any], name: str) -> tuple[float, float] | None:
    """The 95 % interval (low, high) of a metric, None when the row has none."""
    value = (row.get("metrics") or {}).get(name)
    if isinstance(value, Mapping):
        low, high = as_float(value.get("low")), as_float(value.get("high"))
        if low is not None and high is not None:
            return low, high
    return None


def _method_of(variant: str) -> str | None:
    try:
        return Variant.parse(str(variant)).method
    except ValueError:
        return None


def comparisons(rows: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], str, Mapping[str, Any]]]:
    """(row, compared with, {metric: difference}) for each comparison worth showing, rows in display order:
    every variant against clean, and each pair of methods once (SAFER minus random and minus reward margin,
    random minus reward margin); the reverse direction is the same difference negated (it stays in the JSON)."""
    order = {m: i for i, m in enumerate(METHODS)}
    out = []
    for row in sorted_rows(rows):
        mine = order.get(str(row.get("method")), len(order))
        for other, diffs in (row.get("compare") or {}).items():
            if not isinstance(diffs, Mapping):
                continue
            theirs = _method_of(other)
            if (
                other != "clean"
                and theirs is not None
                and (order.get(theirs, len(order)) < mine or theirs == row.get("method"))
            ):
                continue
            out.append((row, other, diffs))
    return out


def compared_metrics(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    seen = {m for _, _, diffs in comparisons(rows) for m in diffs}
    return [m for m in metric_names(rows) if m in seen]


def has_spread(row: Mapping[str, Any], std: float | None) -> bool:
    """Whether a std is worth showing: present, and from more than one seed."""
    n = row.get("n_seeds")
    return std is not None and not (isinstance(n, int) and n <= 1)


def _order(value: Any, known: Sequence[str]) -> tuple[int, str]:
    return (known.index(value), "") if value in known else (len(known), str(value or ""))


def sort_key(row: Mapping[str, Any]) -> tuple:
    ratio = as_float(row.get("ratio"))
    return (
        _order(row.get("mode"), MODES),
        _order(row.get("method"), METHODS),
        ratio if ratio is not None else float("-inf"),
        str(row.get("variant", "")),
    )


def sorted_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Clean first, then poisoning and denoising; within a mode by method (safer, random, reward margin), ratio."""
    return sorted(rows, key=sort_key)


def methods_in(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    found = {str(r.get("method")) for r in rows if r.get("method") is not None}
    return [m for m in METHODS if m in found] + sorted(found - set(METHODS))


def source_mix(row: Mapping[str, Any]) -> dict[str, Any]:
    mix = row.get("source_mix")
    return dict(mix) if isinstance(mix, Mapping) else {}


def sources_in(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        for name in source_mix(row):
            if name not in seen:
                seen.append(name)
    return seen
