"""Every file of a run directory, named once (as SAE Lens keeps its file names in one constants module), and
typed readers and writers for the files stages hand to each other: the pair scores, the feature selection.

Paths are run-relative templates; `{variant}` is a training-set variant's name (`curation/variants.py`),
`{seed}` a seed, `{repeat}` an audit repeat. `RunDir.file(TEMPLATE, ...)` fills one in and keeps it inside
the run; a stage's `writes` are these templates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StageError
from ..features.selection import Selection
from ..io import read_csv, read_json, write_csv, write_json

# ---- the run -------------------------------------------------------------------------------------------
MANIFEST = "manifest.json"
SUMMARY = "summary.json"
LOCKS = "locks"
CACHE = "cache"
"""Frozen-block states shared by every reward model of the run (a sub-run uses its parent's)."""

# ---- data ----------------------------------------------------------------------------------------------
TRAIN = "data/train.jsonl"
TEST = "data/test.jsonl"
DATA_REPORT = "data/report.json"
FOLD_ASSIGNMENT = "data/folds/assignment.csv"
FOLD_TRAIN = "data/folds/{variant}/train.jsonl"
FOLD_HELDOUT = "data/folds/{variant}/heldout.jsonl"
POOL = "pool/pairs.jsonl"

# ---- reward models and their evaluations ---------------------------------------------------------------
RM_DIR = "rm/{variant}/seed-{seed}"
RM_WEIGHTS_CONFIG = "rm/{variant}/seed-{seed}/config.json"
EVAL_DIR = "eval"
EVAL = "eval/{variant}/seed-{seed}.json"

# ---- the analysis --------------------------------------------------------------------------------------
ACTIVATIONS = "activations/{which}"
SAE_DIR = "sae"
SAE_METRICS = "sae/metrics.json"
ATTRIBUTION = "attribution/attribution.safetensors"
ATTRIBUTION_SUMMARY = "attribution/summary.json"
FEATURES_DIR = "features"
FEATURES = "features/features.json"
SELECTION = "features/selection.json"
JUDGEMENTS = "features/judgements"
SCORES = "scores/pairs.csv"
CONTRIBUTIONS = "scores/contributions.safetensors"

# ---- edits, detectors, the causal test, the audit, inspection ------------------------------------------
CURATED_DIR = "curated/{variant}"
CURATED_TRAIN = "curated/{variant}/train.jsonl"
CURATED_EDITS = "curated/{variant}/edits.csv"
CURATED_SUMMARY = "curated/{variant}/summary.json"
DETECT_SCORES = "detect/scores.csv"
DETECT_SUMMARY = "detect/summary.json"
CAUSAL = "causal/results.json"
AUDIT = "audit/results.json"
AUDIT_DETECTORS = "audit/detectors.csv"
AUDIT_REPEAT = "audit/repeat-{repeat}"
INSPECT_SUSPECTS = "inspect/suspects.csv"
INSPECT_REPORT = "inspect/report.html"
INSPECT_SUMMARY = "inspect/summary.json"
INSPECT_CLEANED = "inspect/cleaned"

# ---- the report ----------------------------------------------------------------------------------------
REPORT_DASHBOARD = "report/features.html"
REPORT_RESULTS_MD = "report/results.md"


def run_file(run: str | Path, template: str, **fields) -> Path:
    """One of the files of a finished run directory read from outside a run (a comparison, a report)."""
    return Path(run) / template.format(**fields)


def evaluation_files(run: str | Path) -> list[tuple[str, int, Path]]:
    """(variant, seed, path) of every evaluation (`EVAL`) in a run directory, by variant, then seed."""
    root = Path(run) / EVAL_DIR
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for path in folder.glob("seed-*.json"):
            number = path.stem.removeprefix("seed-")
            if number.isdigit():
                out.append((folder.name, int(number), path))
    return sorted(out, key=lambda t: (t[0], t[1]))


# ---- pair scores: written by `score`, read by `curate` and the detectors -------------------------------
SCORE_COLUMNS = ("id", "safer_score", "reward_margin")
"""Columns every scores file has (beside the per-pair details `score` adds)."""


@dataclass
class PairScores:
    """One value per training pair, in training order: the SAFER score and the clean RM's reward margin."""

    ids: list[str]
    safer: np.ndarray
    reward_margin: np.ndarray
    rows: list[dict]
    """Every column as written (strings), for the details: top features, the margin's decomposition."""

    @classmethod
    def read(cls, path: Path, pair_ids: Sequence[str] | None = None) -> PairScores:
        """Read a scores file; with `pair_ids`, check it scores exactly those pairs, in that order."""
        if not path.is_file():
            raise StageError(f"{path}: no pair scores; run `safer score`")
        rows = read_csv(path)
        missing = [c for c in SCORE_COLUMNS if rows and c not in rows[0]]
        if missing:
            raise StageError(f"{path}: no column {missing[0]!r}; rerun `safer score` with this version")
        ids = [r["id"] for r in rows]
        if pair_ids is not None and ids != list(pair_ids):
            raise StageError(f"{path}: scores and training pairs disagree; rerun `safer score`")
        return cls(
            ids,
            np.array([float(r["safer_score"]) for r in rows]),
            np.array([float(r["reward_margin"]) for r in rows]),
            rows,
        )

    def values(self) -> dict[str, np.ndarray]:
        """The values an edit or a detector ranks pairs by, under the names they go by there."""
        return {"safer": self.safer, "reward_margin": self.reward_margin}


def write_pair_scores(path: Path, rows: list[dict]) -> None:
    missing = [c for c in SCORE_COLUMNS if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"pair scores need the columns {SCORE_COLUMNS}; missing {missing}")
    write_csv(path, rows)


# ---- the feature selection: written by `features`, read by `score`, the causal test, the report ----------
def read_selection(path: Path) -> Selection:
    if not path.is_file():
        raise StageError(f"{path}: no feature selection; run `safer features`")
    data = read_json(path)
    reasons = {int(k): v for k, v in (data.get("reasons") or {}).items()}
    return Selection(data["safe"], data["unsafe"], data.get("candidates", []), reasons)


def write_selection(path: Path, selection: Selection) -> None:
    write_json(path, selection.to_json())
