"""Parts of the inspect stage: the detector it ranks by, the suspects' rows, the cleaned training set
(Parquet, JSONL and a dataset card) and the selected features' labels for the suspects page."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ...curation.detectors import DETECTORS
from ...curation.export import export_pairs
from ...data.records import PreferencePair
from ...io import read_json
from .. import artifacts as A
from ..context import RunContext

log = logging.getLogger(__name__)


def pick_detector(wanted: str, available: Sequence[str]) -> str:
    """The configured detector when present, else the first available of the strongest-first order."""
    if wanted in available:
        return wanted
    fallback = next(d for d in reversed(DETECTORS) if d in available)
    log.warning("inspect: detector %r not available; ranking by %s", wanted, fallback)
    return fallback


def suspect_rows(
    train: Sequence[PreferencePair],
    order: np.ndarray,
    removed: set[int],
    names: Sequence[str],
    values: dict[str, np.ndarray],
    pct: dict[str, np.ndarray],
    top: dict[str, str],
) -> list[dict]:
    """One row per training pair in the detector's order: every detector's value and percentile, the pair's
    top SAFER features and its texts."""
    suspects = []
    for rank, i in enumerate(order, 1):
        p = train[i]
        row = {"rank": rank, "id": p.id, "source": p.source, "kind": p.kind, "removed": int(i in removed)}
        for d in names:
            row[d], row[f"{d}_pct"] = float(values[d][i]), float(pct[d][i])
        row.update(
            {
                "top_features": top.get(p.id, ""),
                "prompt": p.prompt_text(),
                "chosen": p.chosen,
                "rejected": p.rejected,
            }
        )
        suspects.append(row)
    return suspects


def cleaned_set(
    ctx: RunContext,
    train: Sequence[PreferencePair],
    removed: set[int],
    value: np.ndarray,
    detector: str,
    rule: str,
    info: dict,
) -> dict:
    """Export the training pairs without the removed ones (inspect/cleaned), with the removal records and a
    dataset card; what was written."""
    kept = [p for i, p in enumerate(train) if i not in removed]
    ranked = sorted(removed, key=lambda i: (value[i], i))
    records = [
        {
            "id": train[i].id,
            "source": train[i].source,
            "kind": train[i].kind,
            "action": "remove",
            "rank": r + 1,
            "method": detector,
            "value": float(value[i]),
        }
        for r, i in enumerate(ranked)
    ]
    card = {
        "title": "Preference pairs cleaned by safer inspect",
        "summary": f"The training pairs of {ctx.run.root.name} without the pairs whose {detector} detector value "
        f"says the label is most likely wrong ({rule}); {info['definitions'][detector]}. It holds the run's "
        f"training split: the {len(ctx.data.test_pairs())} held-out pairs (data.test_fraction) were not audited.",
        "settings": {
            "detector": detector,
            "rule": rule,
            "reward_model": ctx.cfg.model.reward_model or "trained",
        },
        "sources": ctx.data.source_origins(),
    }
    if ctx.cfg.inspect.threshold is None:
        card["ratio"] = ctx.cfg.inspect.remove
    out = export_pairs(kept, ctx.run.file(A.INSPECT_CLEANED), records=records, card=card)
    exported = {"paths": {k: str(v) for k, v in out.paths.items()}, "rows": out.rows, "counts": out.counts}
    return exported


def feature_labels(ctx: RunContext) -> dict[str, str]:
    """Latent -> the judge's explanation, from features.json."""
    features = read_json(ctx.paths.features() / "features.json")
    labels = {
        str(f.get("latent")): (f.get("judge") or {}).get("explanation", "")
        for f in features.get("latents", [])
    }
    return labels
