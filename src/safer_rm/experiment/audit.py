"""The poisoning audit (a defence the paper lacks): plant q % random flips into the clean training data,
run the whole analysis on the planted set (RM, activations, SAE, features, scores) in a sub-run, and measure
how well each detector ranks the planted flips first. A flipped pair should score low: its label now
disagrees with the safety features (SAFER) or with the RM trained on it (reward margin)."""

from __future__ import annotations

import copy
import random
from typing import TYPE_CHECKING

import numpy as np

from ..curation.edits import apply_edit, edit_count
from ..data import write_pairs
from ..features.judges.probe import auroc
from ..io import read_csv

if TYPE_CHECKING:
    from .pipeline import Pipeline


def precision_at(scores: np.ndarray, positive: np.ndarray, n: int) -> float:
    """Share of planted pairs among the n highest-ranked."""
    top = np.argsort(-np.asarray(scores, dtype=float), kind="stable")[:n]
    return float(np.asarray(positive)[top].mean()) if n else float("nan")


def planted_pipeline(parent: Pipeline, planted_pairs, planted_ids: list[str]) -> Pipeline:
    """A sub-run in <run>/audit whose training data is the planted set (everything else as the parent's)."""
    from .pipeline import CLEAN, Pipeline

    class PlantedPipeline(Pipeline):
        def _data_deps(self) -> dict:
            return {**parent._data_deps(), "planted": planted_ids}

        def data(self, force: bool = False) -> None:
            deps = self._data_deps()
            if self._reusable("data", deps, self.train_path(CLEAN), force=force):
                return
            with self.run.stage("data", deps) as st:
                if not self.main:
                    return
                write_pairs(self.train_path(CLEAN), planted_pairs)
                write_pairs(self.run.path("data", "test.jsonl"), parent.test_pairs())
                st.info = {"train": len(planted_pairs), "planted": len(planted_ids)}

        def prefix_cache(self, frozen: int | None = None):
            return parent.prefix_cache(frozen)  # the same frozen base: share the lower-block cache

    cfg = copy.deepcopy(parent.cfg)
    cfg.run.dir = str(parent.run.path("audit"))
    cfg.run.seeds = [parent.cfg.run.seeds[0]]
    cfg.audit.enabled = cfg.causal.enabled = False
    cfg.curation.methods = []
    return PlantedPipeline(cfg, resume=parent.resume)


def run_audit(parent: Pipeline) -> dict:
    from .pipeline import CLEAN

    ac = parent.cfg.audit
    train = parent.train_pairs(CLEAN)
    n = edit_count(len(train), ac.ratio)
    planted_idx = sorted(random.Random(ac.seed).sample(range(len(train)), n))
    planted = apply_edit(train, planted_idx, "poison", "random")
    sub = planted_pipeline(parent, planted.pairs, [train[i].id for i in planted_idx])
    sub.run.save()
    sub.score()

    rows = read_csv(sub.scores_path())
    ids = [r["id"] for r in rows]
    planted_ids = {train[i].id for i in planted_idx}
    positive = np.array([i in planted_ids for i in ids])
    safer = -np.array([float(r["safer_score"]) for r in rows])  # low score = suspicious
    margin = -np.array([float(r["reward_margin"]) for r in rows])
    return {"q": ac.ratio, "planted": n, "pairs": len(rows),
            "auroc_safer": auroc(safer, positive), "auroc_reward_margin": auroc(margin, positive),
            "precision_safer": precision_at(safer, positive, n),
            "precision_reward_margin": precision_at(margin, positive, n),
            "selected_features": len(sub.selection().latents)}
