"""Every variant's accuracies with intervals, and its paired differences to clean and to the other selection
methods at the same mode and ratio, from the per-pair margins each evaluation wrote (eval/<variant>/seed-<s>.
<set>.csv). Pairs are matched by id; seeds by number (seed s of one variant against seed s of the other).

`compare_options` does the same across run directories that differ only in their feature selection
(`features.*`): each option's SAFER variants against the base run's clean, random and reward-margin variants
and against the other options, beside each option's causal test, audit and selection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SaferError
from ..io import read_csv, read_json, sha256_file
from ..reward.evaluate import column_indices
from ..stats import mean_interval, paired_difference
from .graph import CLEAN

Outcomes = dict[str, tuple[tuple[str, ...], np.ndarray]]
"""Per accuracy column: (pair ids, correct per pair)."""


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
    mode, method, ratio = variant.split("-", 2)
    others = [v for v in present if v != variant and v != CLEAN and v.split("-", 2)[0::2] == [mode, ratio]]
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


# ---- feature-selection options across run directories ---------------------------------------------------
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
DETECTOR = "safer"


@dataclass(frozen=True)
class Evaluated:
    """One variant of one run directory: its per-seed outcomes, and where they were read."""

    run: Path
    variant: str
    by_seed: dict[int, Outcomes]

    def eval_json(self, seed: int) -> Path:
        return self.run / "eval" / self.variant / f"seed-{seed}.json"

    def margin_file(self, seed: int, label: str) -> Path:
        """The margin file a column of one seed was read from (eval/<variant>/seed-<s>.<set>.csv)."""
        path = self.eval_json(seed)
        styles = read_json(path).get("styles", {}) if path.is_file() else {}
        name = next((n for n in styles if label == n or label.startswith(n + " ")), "rewardbench")
        return path.with_suffix(f".{name}.csv")


def read_run(run: Path) -> dict[str, dict[int, Outcomes]]:
    """{variant: {seed: outcomes}} of every evaluation with margin files in a run directory."""
    eval_dir = Path(run) / "eval"
    if not eval_dir.is_dir():
        raise SaferError(f"{eval_dir}: no evaluations here (is {run} a safer-rm run directory?)")
    out: dict[str, dict[int, Outcomes]] = {}
    for folder in sorted(p for p in eval_dir.iterdir() if p.is_dir()):
        by_seed = {}
        for path in folder.glob("seed-*.json"):
            number = path.stem.removeprefix("seed-")
            got = read_outcomes(path) if number.isdigit() else {}
            if got:
                by_seed[int(number)] = got
        if by_seed:
            out[folder.name] = dict(sorted(by_seed.items()))
    return out


def default_columns(runs: Sequence[dict[str, dict[int, Outcomes]]]) -> list[str]:
    """The columns every run has (in some evaluation), `COLUMN_ORDER` first."""
    present = [
        list(dict.fromkeys(label for by_seed in run.values() for o in by_seed.values() for label in o))
        for run in runs
    ]
    common = [label for label in present[0] if all(label in p for p in present[1:])] if present else []
    return [c for c in COLUMN_ORDER if c in common] + [c for c in common if c not in COLUMN_ORDER]


def _align(what: str, ref: tuple[tuple[str, ...], Path], got: tuple[tuple[str, ...], np.ndarray, Path]):
    """`got`'s outcomes in the pair order of `ref`; SaferError naming both files when their pairs differ."""
    ref_ids, ref_file = ref
    ids, values, got_file = got
    if ids == ref_ids:
        return values
    position = {pid: i for i, pid in enumerate(ids)}
    if len(position) != len(ids) or set(ids) != set(ref_ids) or len(ids) != len(ref_ids):
        only_ref, only_got = set(ref_ids) - set(ids), set(ids) - set(ref_ids)
        raise SaferError(
            f"{what}: {ref_file} and {got_file} hold different pairs "
            f"({len(ref_ids)} vs {len(ids)} pairs; {len(only_ref)} only in the first, {len(only_got)} only in "
            f"the second, e.g. {sorted(only_ref | only_got)[:3]}); were the runs made on the same data split?"
        )
    return values[[position[pid] for pid in ref_ids]]


def _matrix(side: Evaluated, seeds: Sequence[int], label: str):
    """(pair ids, margin file, correct per (seed, pair)) of a column over `seeds`, every seed in the first
    seed's pair order; None when a seed lacks the column."""
    if not seeds or any(label not in side.by_seed[s] for s in seeds):
        return None
    ids, _ = side.by_seed[seeds[0]][label]
    ref = (ids, side.margin_file(seeds[0], label))
    rows = [
        _align(f"column {label!r}", ref, (*side.by_seed[s][label], side.margin_file(s, label))) for s in seeds
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
        rows = [_align(f"column {label!r}", ma[:2], (mb[0], row, mb[1])) for row in mb[2]]
        diffs[label] = paired_difference(ma[2], np.stack(rows), n_boot=n_boot, seed=seed).to_json()
    return {"run": str(b.run), "variant": b.variant, "seeds": seeds, "columns": diffs}


def _method(variant: str) -> str | None:
    parts = variant.split("-", 2)
    return parts[1] if len(parts) == 3 else None


def reference_variants(variant: str) -> dict[str, str]:
    """What an edited variant is compared with in the base run: clean, and the `REFERENCES` methods at its
    mode and ratio (`poison-safer-5.0` -> `poison-random-5.0`, `poison-reward_margin-5.0`)."""
    mode, _, ratio = variant.split("-", 2)
    return {CLEAN: CLEAN, **{m: f"{mode}-{m}-{ratio}" for m in REFERENCES}}


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
    hold different pairs, or two audits different planted sets."""
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
    _audit_versus(runs, out_options, n_boot, seed)
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


# ---- causal test, audit and selection of one option ------------------------------------------------------
def causal_summary(run: Path) -> dict | None:
    """causal/results.json per scale and group (`layout` "scales"), or, for runs written before the scales,
    its flat keys (`layout` "flat"); None without a causal test."""
    path = Path(run) / "causal" / "results.json"
    if not path.is_file():
        return None
    doc = read_json(path)
    head = {"file": str(path), "n_latents": doc.get("n_latents"), "draws": doc.get("draws")}
    if "scales" not in doc:
        flat = {k: v for k, v in doc.items() if _is_number(v) and k not in head}
        return {**head, "layout": "flat", "flat": flat}
    groups = doc.get("groups", {})
    return {
        **head,
        "layout": "scales",
        "n_boot": doc.get("n_boot"),
        "scales": [_causal_scale(scale, groups) for scale in doc["scales"]],
    }


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _causal_scale(scale: dict, groups: dict) -> dict:
    return {
        "scale": scale.get("scale"),
        "specificity": scale.get("specificity"),
        "random_specificity": scale.get("random_specificity"),
        "groups": {
            name: _causal_group(c, groups.get(name, {})) for name, c in scale.get("groups", {}).items()
        },
    }


def _causal_group(condition: dict, info: dict) -> dict:
    """One group under one scale: accuracy base -> edited, their paired difference, the margin drop against
    that of the random sets, and the selection's outcome against the random sets' (`versus_random`)."""
    rand = condition.get("random") or {}
    return {
        "n": info.get("n"),
        "base_accuracy": (info.get("base") or {}).get("accuracy"),
        "accuracy": condition.get("accuracy"),
        "accuracy_diff": condition.get("accuracy_diff"),
        "margin_drop": condition.get("margin_drop"),
        "mean_abs_margin_change": condition.get("mean_abs_margin_change"),
        "random_accuracy": rand.get("accuracy"),
        "random_margin_drop": rand.get("margin_drop"),
        "random_margin_drop_sd": rand.get("margin_drop_sd"),
        "versus_random": condition.get("versus_random"),
    }


def audit_summary(run: Path) -> dict | None:
    """audit/results.json: the planting and every detector's AUROC over all pairs and over safety pairs,
    with intervals; None without an audit."""
    path = Path(run) / "audit" / "results.json"
    if not path.is_file():
        return None
    doc = read_json(path)
    keys = ("q", "scope", "repeats", "planted", "pairs", "shared_with", "selected_features")
    detectors = {
        name: {pop: m["auroc"] for pop, m in pops.items() if "auroc" in m}
        for name, pops in doc.get("detectors", {}).items()
    }
    return {"file": str(path), **{k: doc.get(k) for k in keys}, "detectors": detectors, "versus": {}}


def features_summary(run: Path) -> dict | None:
    """features/features.json: the selected latents (safe / unsafe), the ranking, the specificity test; the
    `features.*` settings the features stage ran with (manifest.json); and attribution/summary.json's check
    (pearson, slope) when there is one. None without features.json."""
    path = Path(run) / "features" / "features.json"
    if not path.is_file():
        return None
    doc = read_json(path)
    sel = doc.get("selection", {})
    spec = doc.get("specificity")
    settings = feature_settings(run)
    out = {
        "safe": len(sel.get("safe", [])),
        "unsafe": len(sel.get("unsafe", [])),
        "ranking": doc.get("ranking") or settings.get("features.salience"),
        "settings": settings,
        "specificity": None
        if spec is None
        else {
            "threshold": spec.get("threshold"),
            "tested": len(spec.get("tested", {})),
            "kept": len(spec.get("kept", [])),
        },
        "attribution": None,
    }
    summary = Path(run) / "attribution" / "summary.json"
    if summary.is_file():
        check = read_json(summary).get("check") or {}
        out["attribution"] = {"pearson": check.get("pearson"), "slope": check.get("slope")}
    return out


def feature_settings(run: Path) -> dict:
    """The `features.*` values the run's features stage was made with (manifest.json); {} when unrecorded."""
    path = Path(run) / "manifest.json"
    if not path.is_file():
        return {}
    values = read_json(path).get("stages", {}).get("features", {}).get("values", {})
    return {k: v for k, v in values.items() if k.startswith("features.")}


# ---- the paired AUROC difference of the SAFER detector between options ----------------------------------
@dataclass(frozen=True)
class AuditScores:
    """One option's audit, per repeat: pair ids, the detector's values, planted and safety masks, the file."""

    ids: list[tuple[str, ...]]
    values: list[np.ndarray]
    planted: list[np.ndarray]
    safety: list[np.ndarray]
    files: list[Path]


def read_audit_scores(run: Path, detector: str = DETECTOR) -> AuditScores | None:
    """Every audit repeat's audit/repeat-<i>/detect/scores.csv; None without one. The planted pairs come
    from a `planted` column when there is one, else from the repeat's manifest (the planted ids its data
    stage was given), else from the shared random variant's curated/<variant>/edits.csv."""
    run = Path(run)
    folders = [p for p in (run / "audit").glob("repeat-*") if p.name.removeprefix("repeat-").isdigit()]
    folders.sort(key=lambda p: int(p.name.removeprefix("repeat-")))
    files = [f / "detect" / "scores.csv" for f in folders if (f / "detect" / "scores.csv").is_file()]
    if not files:
        return None
    out = AuditScores([], [], [], [], files)
    for f in files:
        rows = read_csv(f)
        if not rows or detector not in rows[0]:
            raise SaferError(f"{f}: no {detector!r} column (columns: {list(rows[0]) if rows else 'none'})")
        planted = planted_ids(run, f, rows)
        out.ids.append(tuple(r["id"] for r in rows))
        out.values.append(np.array([float(r[detector]) for r in rows]))
        out.planted.append(np.array([r["id"] in planted for r in rows]))
        out.safety.append(np.array([r["kind"] == "safety" for r in rows]))
    return out


def planted_ids(run: Path, scores_csv: Path, rows: list[dict]) -> set[str]:
    """The ids of the pairs an audit repeat planted (see `read_audit_scores`)."""
    if "planted" in rows[0]:
        return {r["id"] for r in rows if r["planted"].strip().lower() in ("1", "true", "yes")}
    manifest = scores_csv.parent.parent / "manifest.json"
    if manifest.is_file():
        values = read_json(manifest).get("stages", {}).get("data", {}).get("values", {})
        given = values.get("input.given") or {}
        if "planted" in given:
            return set(given["planted"])
    results = Path(run) / "audit" / "results.json"
    shared = read_json(results).get("shared_with") if results.is_file() else None
    edits = Path(run) / "curated" / str(shared) / "edits.csv"
    if shared and edits.is_file():
        return {r["id"] for r in read_csv(edits)}
    raise SaferError(
        f"{scores_csv}: which pairs were planted is recorded neither in a 'planted' column, nor in {manifest} "
        f"(stages.data.values['input.given'].planted), nor in a shared variant's edits.csv"
    )


def _matched_audits(a: AuditScores, b: AuditScores) -> tuple[list[np.ndarray], int]:
    """b's values in a's pair order, repeat by repeat (the repeats both have), or SaferError when the two
    audits hold different pairs or planted different ones."""
    repeats = min(len(a.files), len(b.files))
    values = []
    for r in range(repeats):
        values.append(_align("audit scores", (a.ids[r], a.files[r]), (b.ids[r], b.values[r], b.files[r])))
        planted_b = _align("audit scores", (a.ids[r], a.files[r]), (b.ids[r], b.planted[r], b.files[r]))
        if not np.array_equal(planted_b, a.planted[r]):
            n = int((planted_b != a.planted[r]).sum())
            raise SaferError(
                f"{a.files[r]} and {b.files[r]}: the audits planted different pairs ({int(a.planted[r].sum())} "
                f"vs {int(planted_b.sum())} planted, {n} pairs differ); the AUROCs are not paired"
            )
    return values, repeats


def safer_auroc_difference(a: AuditScores, b: AuditScores, n_boot: int = 2000, seed: int = 0) -> dict:
    """AUROC of a's detector minus b's on the same planted set, over all pairs and over safety pairs, with a
    paired bootstrap interval (`curation.detectors.auroc_differences`: both on the same resamples)."""
    from ..curation.detectors import auroc_differences  # torch: imported only when there is an audit

    b_values, repeats = _matched_audits(a, b)
    diff = auroc_differences(
        {"a": a.values[:repeats], "b": b_values},
        a.planted[:repeats],
        a.safety[:repeats],
        "b",
        n_boot=n_boot,
        seed=seed,
    )["a"]
    for pop, mask in (("all", None), ("safety", a.safety)):
        pick = [np.ones_like(p) if mask is None else mask[r] for r, p in enumerate(a.planted[:repeats])]
        diff[pop]["n"] = int(pick[0].sum())
        diff[pop]["positives"] = int(sum((p & m).sum() for p, m in zip(a.planted[:repeats], pick)))
    return {**diff, "repeats": repeats}


def _negated(diff: dict) -> dict:
    """The difference the other way round (b minus a): the same bootstrap, mirrored."""
    out = {**diff}
    for pop in ("all", "safety"):
        d = diff[pop]
        out[pop] = {**d, "diff": 0.0 - d["diff"], "low": 0.0 - d["high"], "high": 0.0 - d["low"]}  # no -0.0
    return out


def _audit_versus(runs: dict[str, Path], out: dict[str, dict], n_boot: int, seed: int) -> None:
    """Fill every option's audit `versus` with its detector's paired AUROC difference to every other option."""
    scores = {label: read_audit_scores(path) for label, path in runs.items()}
    labels = [k for k, v in scores.items() if v is not None and out[k]["audit"] is not None]
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            diff = safer_auroc_difference(scores[a], scores[b], n_boot, seed)
            out[a]["audit"]["versus"][b] = diff
            out[b]["audit"]["versus"][a] = _negated(diff)
