"""The poisoning audit (a defence the paper lacks), as pure functions: which pairs to plant (random flips of
q % of the clean training data), the configuration of the sub-run that analyses the planted set, and how well
each detector ranks the planted flips first. A flipped pair should score low: its label now disagrees with the
safety features (SAFER) or with the RM trained on it (reward margin). The stage that runs it is
experiment/stages/sweep.py:audit."""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..config import Config
from ..curation.edits import edit_count, variant_name
from ..metrics import auroc, precision_at
from .graph import edited_variants


def planted_indices(n_pairs: int, ratio: float, seed: int) -> list[int]:
    """Indices of the pairs to flip: q % of them, drawn with `seed`."""
    return sorted(random.Random(seed).sample(range(n_pairs), edit_count(n_pairs, ratio)))


def shared_variant(cfg: Config) -> str | None:
    """The run's random-poisoning variant the audit shares (flips and reward model), if there is one."""
    name = variant_name("poison", "random", cfg.audit.ratio)
    return name if cfg.audit.share and name in edited_variants(cfg) else None


def subrun_config(cfg: Config, root: Path) -> Config:
    """The sub-run's config: the parent's, in <run>/audit, one seed, nothing of the sweep."""
    sub = copy.deepcopy(cfg)
    sub.run.dir = str(root)
    sub.run.seeds = [cfg.run.seeds[0]]
    sub.audit.enabled = sub.causal.enabled = sub.eval.pool = False
    sub.curation.methods = []
    return sub


def audit_metrics(rows: Sequence[dict], planted_ids: set[str], ratio: float) -> dict:
    """AUROC and precision at q of each detector (low score = suspicious) on the sub-run's score rows."""
    positive = np.array([r["id"] in planted_ids for r in rows])
    n = len(planted_ids)
    safer = -np.array([float(r["safer_score"]) for r in rows])
    margin = -np.array([float(r["reward_margin"]) for r in rows])
    return {
        "q": ratio,
        "planted": n,
        "pairs": len(rows),
        "auroc_safer": auroc(safer, positive),
        "auroc_reward_margin": auroc(margin, positive),
        "precision_safer": precision_at(safer, positive, n),
        "precision_reward_margin": precision_at(margin, positive, n),
    }
