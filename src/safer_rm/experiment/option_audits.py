"""The paired AUROC difference of the SAFER detector between two options' audits: both read from every audit
repeat's detect/scores.csv, the planted pairs from the repeat's manifest, compared on the same planted set
and the same bootstrap resamples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SaferError
from ..io import read_csv, read_json
from . import artifacts as A
from .option_runs import align, older_layout

DETECTOR = "safer"


@dataclass(frozen=True)
class AuditScores:
    """One option's audit, per repeat: pair ids, the detector's values, planted and safety masks, the file."""

    ids: list[tuple[str, ...]]
    values: list[np.ndarray]
    planted: list[np.ndarray]
    safety: list[np.ndarray]
    files: list[Path]


def read_audit_scores(run: Path, detector: str = DETECTOR) -> AuditScores | None:
    """Every audit repeat's audit/repeat-<i>/detect/scores.csv, its planted pairs from the repeat's manifest
    (`planted_ids`); None without an audit. StageError for an audit whose results have no repeat scores (the
    layout that wrote audit/scores/pairs.csv)."""
    run = Path(run)
    repeats = sorted(
        int(p.name.removeprefix("repeat-"))
        for p in run.glob(A.AUDIT_REPEAT.format(repeat="*"))
        if p.name.removeprefix("repeat-").isdigit()
    )
    files = [A.run_file(run, A.AUDIT_REPEAT, repeat=r) / A.DETECT_SCORES for r in repeats]
    files = [f for f in files if f.is_file()]
    if not files:
        if A.run_file(run, A.AUDIT).is_file():
            old = run / "audit" / "scores" / "pairs.csv"
            what = "audit/scores/pairs.csv" if old.is_file() else "no audit/repeat-<i>/detect/scores.csv"
            raise older_layout(run, "audit", what)
        return None
    out = AuditScores([], [], [], [], files)
    for f in files:
        rows = read_csv(f)
        if not rows or detector not in rows[0]:
            raise SaferError(f"{f}: no {detector!r} column (columns: {list(rows[0]) if rows else 'none'})")
        planted = planted_ids(run, f)
        out.ids.append(tuple(r["id"] for r in rows))
        out.values.append(np.array([float(r[detector]) for r in rows]))
        out.planted.append(np.array([r["id"] in planted for r in rows]))
        out.safety.append(np.array([r["kind"] == "safety" for r in rows]))
    return out


def planted_ids(run: Path, scores_csv: Path) -> set[str]:
    """The ids of the pairs an audit repeat planted: the planted ids its data stage was given, as the repeat's
    manifest records them (stages.data.values['input.given'].planted). StageError naming the version that
    wrote the run when they are not recorded there."""
    manifest = scores_csv.parent.parent / A.MANIFEST
    values = (
        read_json(manifest).get("stages", {}).get("data", {}).get("values", {}) if manifest.is_file() else {}
    )
    given = values.get("input.given") or {}
    if "planted" not in given:
        where = manifest.relative_to(run) if manifest.is_relative_to(run) else manifest
        raise older_layout(run, "audit", f"no planted ids in {where}")
    return set(given["planted"])


def _matched_audits(a: AuditScores, b: AuditScores) -> tuple[list[np.ndarray], int]:
    """b's values in a's pair order, repeat by repeat (the repeats both have), or SaferError when the two
    audits hold different pairs or planted different ones."""
    repeats = min(len(a.files), len(b.files))
    values = []
    for r in range(repeats):
        values.append(align("audit scores", (a.ids[r], a.files[r]), (b.ids[r], b.values[r], b.files[r])))
        planted_b = align("audit scores", (a.ids[r], a.files[r]), (b.ids[r], b.planted[r], b.files[r]))
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


def audit_versus(runs: dict[str, Path], out: dict[str, dict], n_boot: int, seed: int) -> None:
    """Fill every option's audit `versus` with its detector's paired AUROC difference to every other option."""
    scores = {label: read_audit_scores(path) for label, path in runs.items()}
    labels = [k for k, v in scores.items() if v is not None and out[k]["audit"] is not None]
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            diff = safer_auroc_difference(scores[a], scores[b], n_boot, seed)
            out[a]["audit"]["versus"][b] = diff
            out[b]["audit"]["versus"][a] = _negated(diff)
