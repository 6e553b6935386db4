"""What `safer compare` reads from one option's run directory: its evaluations' per-pair outcomes, and a
summary of its causal test, audit and feature selection. A run written in an older layout than this version
reads is refused with one line naming the version that wrote it (`older_layout`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import SaferError, StageError
from ..io import read_json
from . import artifacts as A
from .compare import Outcomes, read_outcomes


def written_by(run: Path, stage: str) -> str:
    """`safer-rm <version>` from the run's manifest.json (with the commit that ran `stage`, when recorded)."""
    path = A.run_file(run, A.MANIFEST)
    doc = read_json(path) if path.is_file() else {}
    version = (doc.get("versions") or {}).get("safer-rm")
    commit = ((doc.get("stages") or {}).get(stage) or {}).get("commit")
    who = f"safer-rm {version}" if version else "an unknown safer-rm version"
    return who + (f" (commit {commit})" if commit else "")


def older_layout(run: Path, stage: str, what: str) -> StageError:
    """The one-line error for a run whose `stage` wrote `what`, a layout this version no longer reads."""
    return StageError(
        f"{run}: written by {written_by(run, stage)} in an older layout ({what}); rerun its {stage} stage "
        f"with this version (safer-rm {__version__})"
    )


def align(what: str, ref: tuple[tuple[str, ...], Path], got: tuple[tuple[str, ...], np.ndarray, Path]):
    """`got`'s values in the pair order of `ref`; SaferError naming both files when their pairs differ."""
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


# ---- evaluations -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Evaluated:
    """One variant of one run directory: its per-seed outcomes, and where they were read."""

    run: Path
    variant: str
    by_seed: dict[int, Outcomes]

    def eval_json(self, seed: int) -> Path:
        return A.run_file(self.run, A.EVAL, variant=self.variant, seed=seed)

    def margin_file(self, seed: int, label: str) -> Path:
        """The margin file a column of one seed was read from (eval/<variant>/seed-<s>.<set>.csv)."""
        path = self.eval_json(seed)
        styles = read_json(path).get("styles", {}) if path.is_file() else {}
        name = next((n for n in styles if label == n or label.startswith(n + " ")), "rewardbench")
        return path.with_suffix(f".{name}.csv")


def read_run(run: Path) -> dict[str, dict[int, Outcomes]]:
    """{variant: {seed: outcomes}} of every evaluation with margin files in a run directory."""
    eval_dir = A.run_file(run, A.EVAL_DIR)
    if not eval_dir.is_dir():
        raise SaferError(f"{eval_dir}: no evaluations here (is {run} a safer-rm run directory?)")
    out: dict[str, dict[int, Outcomes]] = {}
    for variant, seed, path in A.evaluation_files(run):
        got = read_outcomes(path)
        if got:
            out.setdefault(variant, {})[seed] = got
    return out


# ---- causal test, audit and selection ----------------------------------------------------------------------
def causal_summary(run: Path) -> dict | None:
    """causal/results.json per scale and group; None without a causal test. StageError for a results file
    without `scales` (written before the causal test scaled latents)."""
    path = A.run_file(run, A.CAUSAL)
    if not path.is_file():
        return None
    doc = read_json(path)
    if not isinstance(doc.get("scales"), list):
        raise older_layout(run, "causal", "causal/results.json without 'scales'")
    groups = doc.get("groups", {})
    return {
        "file": str(path),
        "n_latents": doc.get("n_latents"),
        "draws": doc.get("draws"),
        "n_boot": doc.get("n_boot"),
        "scales": [_causal_scale(scale, groups) for scale in doc["scales"]],
    }


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
    with intervals; None without an audit. StageError for an audit without `detectors` (one written when the
    audit kept only `auroc_safer` and `auroc_reward_margin`)."""
    path = A.run_file(run, A.AUDIT)
    if not path.is_file():
        return None
    doc = read_json(path)
    if not isinstance(doc.get("detectors"), dict):
        raise older_layout(run, "audit", "audit/results.json without 'detectors'")
    keys = ("q", "scope", "repeats", "planted", "pairs", "shared_with", "selected_features")
    detectors = {
        name: {pop: m["auroc"] for pop, m in pops.items() if "auroc" in m}
        for name, pops in doc["detectors"].items()
    }
    return {"file": str(path), **{k: doc.get(k) for k in keys}, "detectors": detectors, "versus": {}}


def features_summary(run: Path) -> dict | None:
    """features/features.json: the selected latents (safe / unsafe), the ranking, the specificity test; the
    `features.*` settings the features stage ran with (manifest.json); and attribution/summary.json's check
    (pearson, slope) when there is one. None without features.json."""
    path = A.run_file(run, A.FEATURES)
    if not path.is_file():
        return None
    doc = read_json(path)
    sel = doc.get("selection", {})
    spec = doc.get("specificity")
    out = {
        "safe": len(sel.get("safe", [])),
        "unsafe": len(sel.get("unsafe", [])),
        "ranking": doc.get("ranking"),
        "settings": feature_settings(run),
        "specificity": None
        if spec is None
        else {
            "threshold": spec.get("threshold"),
            "tested": len(spec.get("tested", {})),
            "kept": len(spec.get("kept", [])),
        },
        "attribution": None,
    }
    summary = A.run_file(run, A.ATTRIBUTION_SUMMARY)
    if summary.is_file():
        check = read_json(summary).get("check") or {}
        out["attribution"] = {"pearson": check.get("pearson"), "slope": check.get("slope")}
    return out


def feature_settings(run: Path) -> dict:
    """The `features.*` values the run's features stage was made with (manifest.json); {} when unrecorded."""
    path = A.run_file(run, A.MANIFEST)
    if not path.is_file():
        return {}
    values = read_json(path).get("stages", {}).get("features", {}).get("values", {})
    return {k: v for k, v in values.items() if k.startswith("features.")}
