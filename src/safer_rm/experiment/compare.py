"""Every variant's accuracies with intervals, and its paired differences to clean and to the other selection
methods at the same mode and ratio, from the per-pair margins each evaluation wrote (eval/<variant>/seed-<s>.
<set>.csv). Pairs are matched by id; seeds by number (seed s of one variant against seed s of the other).
The same across run directories (feature-selection options, `safer compare`) is in options.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..curation.variants import Variant
from ..io import read_csv, read_json
from ..reward.evaluate import column_indices
from ..reward.rewardbench2 import read_units, unit_columns, unit_ids
from ..stats import mean_interval, paired_difference
from .graph import CLEAN

Outcomes = dict[str, tuple[tuple[str, ...], np.ndarray]]
"""Per accuracy column: (pair ids, correct per pair); RewardBench 2: (unit ids, value per unit)."""


def read_outcomes(eval_json: Path) -> Outcomes:
    """The per-pair outcomes of one evaluation by column; empty when its margin files are missing."""
    if not eval_json.is_file():
        return {}
    styles = read_json(eval_json).get("styles", {})
    out: Outcomes = {}
    for name, style in styles.items():
        path = eval_json.with_suffix(f".{name}.csv")
        if not path.is_file():
            continue
        rows = read_csv(path)
        if style == "rewardbench2":  # per-unit values, not margins
            units = read_units(rows)
            got = unit_ids(units)
            out.update({label: (got[label], values) for label, values in unit_columns(units).items()})
            continue
        ids = np.array([r["id"] for r in rows], dtype=object)
        correct = np.array([float(r["margin"]) > 0 for r in rows])
        cols = column_indices(name, style, [r["kind"] for r in rows], [r["subset"] for r in rows])
        for label, idx in cols.items():
            out[label] = (tuple(ids[idx]), correct[idx])
    return out


def targets(variant: str, present: Sequence[str]) -> list[str]:
    """What a variant is compared with: clean, then the other methods at its mode and ratio."""
    if variant == CLEAN:
        return []
    mine = Variant.parse(variant)
    others = [v for v in present if v != variant and v != CLEAN and mine.same_edit_size(Variant.parse(v))]
    return ([CLEAN] if CLEAN in present else []) + others


def _stack(
    per_seed: dict[int, Outcomes], seeds: Sequence[int], label: str
) -> tuple[tuple[str, ...], np.ndarray] | None:
    rows, ids = [], None
    for s in seeds:
        got = per_seed[s].get(label)
        if got is None or (ids is not None and got[0] != ids):
            return None
        ids = got[0]
        rows.append(got[1])
    return (ids, np.stack(rows)) if rows else None


def variant_statistics(
    outcomes: dict[str, dict[int, Outcomes]], n_boot: int = 2000, seed: int = 0
) -> dict[str, dict]:
    """{variant: {"intervals": {column: Interval}, "compare": {other: {column: PairedDiff}}}} as JSON."""
    out: dict[str, dict] = {}
    present = [v for v, by_seed in outcomes.items() if by_seed]
    for v in present:
        by_seed = outcomes[v]
        seeds = sorted(by_seed)
        labels = list(dict.fromkeys(label for s in seeds for label in by_seed[s]))
        intervals = {}
        for label in labels:
            got = _stack(by_seed, seeds, label)
            if got is not None:
                intervals[label] = mean_interval(got[1], n_boot=n_boot, seed=seed).to_json()
        compare: dict[str, dict] = {}
        for other in targets(v, present):
            common = sorted(set(seeds) & set(outcomes[other]))
            if not common:
                continue
            diffs = {}
            for label in labels:
                a, b = _stack(by_seed, common, label), _stack(outcomes[other], common, label)
                if a is None or b is None or a[0] != b[0]:
                    continue  # the two were not scored on the same pairs (e.g. a stale evaluation)
                diffs[label] = paired_difference(a[1], b[1], n_boot=n_boot, seed=seed).to_json()
            if diffs:
                compare[other] = diffs
        out[v] = {"intervals": intervals, "compare": compare}
    return out
