"""Feature-selection options compared across run directories (`safer compare`): runs of one experiment that
differ only in `features.*`. Each option's SAFER variants against the base run's clean, random and
reward-margin variants and against the other options, beside each option's causal test, audit and selection.
Pairs are matched by id; seeds by number (seed s of one side against seed s of the other)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..curation.variants import Variant
from ..errors import SaferError
from ..io import sha256_file
from ..stats import mean_interval, paired_difference
from .compare import Outcomes
from .graph import CLEAN
from .option_audits import audit_versus
from .option_runs import Evaluated, align, audit_summary, causal_summary, features_summary, read_run

COLUMN_ORDER = (
    "Safety",
    "Chat",
    "Chat Hard",
    "Reasoning",
    "heldout safety",
    "heldout chat",
    "pool safety",
    "pool chat",
)
"""The order of the default columns of `compare_options` (columns outside it follow, in the order found)."""
SELECTION = "safer"
REFERENCES = ("random", "reward_margin")
"""The base run's methods every option's SAFER variant is compared with, at the same mode and ratio."""


def default_columns(runs: Sequence[dict[str, dict[int, Outcomes]]]) -> list[str]:
    """The columns every run has (in some evaluation), `COLUMN_ORDER` first."""
    present = [
        list(dict.fromkeys(label for by_seed in run.values() for o in by_seed.values() for label in o))
        for run in runs
    ]
    common = [label for label in present[0] if all(label in p for p in present[1:])] if present else []
    return [c for c in COLUMN_ORDER if c in common] + [c for c in common if c not in COLUMN_ORDER]


def _matrix(side: Evaluated, seeds: Sequence[int], label: str):
    """(pair ids, margin file, correct per (seed, pair)) of a column over `seeds`, every seed in the first
    seed's pair order; None when a seed lacks the column."""
    if not seeds or any(label not in side.by_seed[s] for s in seeds):
        return None
    ids, _ = side.by_seed[seeds[0]][label]
    ref = (ids, side.margin_file(seeds[0], label))
    rows = [
        align(f"column {label!r}", ref, (*side.by_seed[s][label], side.margin_file(s, label))) for s in seeds
    ]
    return ids, ref[1], np.stack(rows)


def _intervals(side: Evaluated, columns: Sequence[str], n_boot: int, seed: int) -> dict[str, dict]:
    """Accuracy per column over all the variant's seeds, with its hierarchical bootstrap interval."""
    out = {}
    for label in columns:
        got = _matrix(side, sorted(side.by_seed), label)
        if got is not None:
            out[label] = mean_interval(got[2], n_boot=n_boot, seed=seed).to_json()
    return out


def _paired(a: Evaluated, b: Evaluated, columns: Sequence[str], n_boot: int, seed: int) -> dict:
    """a minus b per column on the seeds both have, pairs matched by id: {run, variant, seeds, columns}."""
    seeds = sorted(set(a.by_seed) & set(b.by_seed))
    diffs = {}
    for label in columns:
        ma, mb = _matrix(a, seeds, label), _matrix(b, seeds, label)
        if ma is None or mb is None:
            continue
        rows = [align(f"column {label!r}", ma[:2], (mb[0], row, mb[1])) for row in mb[2]]
        diffs[label] = paired_difference(ma[2], np.stack(rows), n_boot=n_boot, seed=seed).to_json()
    return {"run": str(b.run), "variant": b.variant, "seeds": seeds, "columns": diffs}


def _method(variant: str) -> str | None:
    return Variant.parse(variant).method


def reference_variants(variant: str) -> dict[str, str]:
    """What an edited variant is compared with in the base run: clean, and the `REFERENCES` methods at its
    mode and ratio (`poison-safer-5.0` -> `poison-random-5.0`, `poison-reward_margin-5.0`)."""
    edit = Variant.parse(variant)
    return {CLEAN: CLEAN, **{m: Variant.edit(edit.mode, m, edit.ratio).name for m in REFERENCES}}


def _variant_entry(
    label: str, variant: str, sides: dict[str, dict[str, Evaluated]], base: str, columns, n_boot, seed
) -> dict:
    """One option's SAFER variant: its accuracies, its differences to the base run's references (`versus`)
    and to the same variant of every other option (`options`)."""
    side = sides[label][variant]
    versus = {
        name: _paired(side, sides[base][ref], columns, n_boot, seed)
        for name, ref in reference_variants(variant).items()
        if ref in sides[base]
    }
    others = {
        other: _paired(side, got[variant], columns, n_boot, seed)
        for other, got in sides.items()
        if other != label and variant in got
    }
    return {
        "seeds": sorted(side.by_seed),
        "intervals": _intervals(side, columns, n_boot, seed),
        "versus": versus,
        "options": others,
    }


def _references(sides: dict[str, Evaluated], variants: Sequence[str], columns, n_boot, seed) -> dict:
    """The base run's clean variant and the reference methods of `variants`, with their accuracies."""
    names = dict.fromkeys(ref for v in variants for ref in reference_variants(v).values())
    return {
        ref: {"seeds": sorted(sides[ref].by_seed), "intervals": _intervals(sides[ref], columns, n_boot, seed)}
        for ref in names
        if ref in sides
    }


def _option_runs(base: Path, options: dict[str, Path], base_label: str | None) -> tuple[str, dict[str, Path]]:
    """(the base's label, every option's run directory, the base among them)."""
    runs = {label: Path(p) for label, p in options.items()}
    if base_label is None:
        base_label = next((k for k, p in runs.items() if p.resolve() == Path(base).resolve()), "base")
    if base_label in runs and runs[base_label].resolve() != Path(base).resolve():
        raise SaferError(f"option {base_label!r} is {runs[base_label]}, but the base run is {base}")
    runs = {base_label: Path(base), **{k: p for k, p in runs.items() if k != base_label}}
    for label, path in runs.items():
        if not path.is_dir():
            raise SaferError(f"option {label!r}: {path} is not a directory")
    return base_label, runs


def compare_options(
    base: Path,
    options: dict[str, Path],
    columns: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    *,
    base_label: str | None = None,
) -> dict:
    """Compare feature-selection options: run directories of the same experiment that differ only in
    `features.*` (same split, evaluation sets and seeds; the same clean, random and reward-margin sets).

    `options` maps a label to a run directory; the base run is one of them (`base_label`, default: the label
    whose directory is `base`, else "base"). For every SAFER variant of every option: its accuracy per column
    over all its seeds; paired differences (hierarchical bootstrap over seeds, then pairs matched by id) to the
    base run's clean variant and to its random and reward-margin variants at the same mode and ratio
    (`versus`), and to the same variant of every other option (`options`), each on the seeds both sides have
    (listed). Beside them, per option, its causal test, its audit with the paired AUROC difference of the
    `safer` detector to every other option on the same planted set, and its selection. `columns`: default
    every column present in all runs (`default_columns`). Raises SaferError when two evaluations of a column
    hold different pairs, or two audits different planted sets; StageError when a run is in an older layout."""
    base_label, runs = _option_runs(base, options, base_label)
    evals = {label: read_run(path) for label, path in runs.items()}
    cols = list(columns) if columns else default_columns(list(evals.values()))
    sides = {
        label: {v: Evaluated(runs[label], v, by_seed) for v, by_seed in got.items()}
        for label, got in evals.items()
    }
    variants = {label: [v for v in got if _method(v) == SELECTION] for label, got in evals.items()}
    out_options = {}
    for label, path in runs.items():
        out_options[label] = {
            "run": str(path),
            "variants": {
                v: _variant_entry(label, v, sides, base_label, cols, n_boot, seed) for v in variants[label]
            },
            "causal": causal_summary(path),
            "audit": audit_summary(path),
            "features": features_summary(path),
        }
    audit_versus(runs, out_options, n_boot, seed)
    shared = [v for v in evals[base_label] if _method(v) != SELECTION]
    every = list(dict.fromkeys(v for got in variants.values() for v in got))
    return {
        "base": base_label,
        "runs": {label: str(p) for label, p in runs.items()},
        "columns": cols,
        "n_boot": n_boot,
        "seed": seed,
        "references": _references(sides[base_label], every, cols, n_boot, seed),
        "shared_files": shared_files(runs, base_label, shared),
        "options": out_options,
    }


def shared_files(runs: dict[str, Path], base: str, variants: Sequence[str]) -> dict[str, list[str]]:
    """Which of the files the options should share (data split, the non-SAFER training sets) are byte-identical
    to the base run's in every option (`identical`), differ in some (`differ`), or are missing somewhere."""
    names = [
        "data/train.jsonl",
        "data/test.jsonl",
        *(f"curated/{v}/train.jsonl" for v in variants if v != CLEAN),
    ]
    out: dict[str, list[str]] = {"identical": [], "differ": [], "missing": []}
    for name in names:
        paths = [runs[base] / name, *(p / name for k, p in runs.items() if k != base)]
        if not all(p.is_file() for p in paths):
            out["missing"].append(name)
            continue
        same = len({sha256_file(p) for p in paths}) == 1
        out["identical" if same else "differ"].append(name)
    return out
