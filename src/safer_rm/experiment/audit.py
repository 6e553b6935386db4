"""The poisoning audit (a defence the paper lacks), as pure functions: which pairs to plant (random flips of
q % of the clean training data, among all pairs or safety pairs alone), the plan of each repeat (its seed, its
planting, which reward models it can reuse from the sweep), and the configuration of the sub-run that analyses
a planted set. A flipped pair should score low on every detector. The stage that runs it is
experiment/stages/detect.py:audit; the metrics are curation/detectors.py:detector_metrics."""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..curation.edits import edit_count
from ..curation.variants import Variant
from ..data.records import PreferencePair
from .graph import edited_variants, ensemble_seeds


def planted_indices(
    pairs: Sequence[PreferencePair], ratio: float, seed: int, scope: str = "all"
) -> list[int]:
    """Indices of the pairs to flip: q % of all pairs, drawn with `seed` among every pair or among safety
    pairs alone (all of them when there are fewer)."""
    candidates = [i for i, p in enumerate(pairs) if scope == "all" or p.kind == "safety"]
    n = min(edit_count(len(pairs), ratio), len(candidates))
    return sorted(random.Random(seed).sample(candidates, n))


def shared_variant(cfg: Config) -> str | None:
    """The run's random-poisoning variant the audit shares (flips and reward models), if there is one: same
    ratio, same scope, no stratification."""
    name = Variant.edit("poison", "random", cfg.audit.ratio).name
    same = cfg.curation.scope == cfg.audit.scope and not cfg.curation.stratify
    return name if cfg.audit.share and same and name in edited_variants(cfg) else None


@dataclass(frozen=True)
class Repeat:
    index: int
    seed: int
    """Seed of the repeat's reward model and SAE."""
    plant_seed: int
    shared: str | None
    """The sweep's variant whose flips (and reward models) it reuses."""
    copied_seeds: tuple[int, ...]
    """Seeds whose planted reward model is copied from the sweep instead of trained."""


def repeat_plan(cfg: Config) -> list[Repeat]:
    """Repeat i: the run's i-th seed (past the run's seeds, the next unused ones), planting seed `audit.seed` + i.
    With sharing, every repeat reuses the sweep's random flips (one planting: repeats then differ only in their
    seeds) and each sweep model of a seed it needs."""
    shared = shared_variant(cfg)
    seeds = list(cfg.run.seeds)
    own = list(seeds)
    while len(own) < cfg.audit.repeats:  # past the run's seeds: the next unused ones
        own.append(max(own) + 1)
    out = []
    for i in range(cfg.audit.repeats):
        seed = own[i]
        members = {seed, *ensemble_seeds(_one_seed(cfg, seed))}
        copied = tuple(sorted(s for s in members if s in seeds)) if shared else ()
        out.append(Repeat(i, seed, cfg.audit.seed + i, shared, copied))
    return out


def _one_seed(cfg: Config, seed: int) -> Config:
    sub = copy.deepcopy(cfg)
    sub.run.seeds = [seed]
    sub.model.reward_model = None
    return sub


def shares_sae(cfg: Config) -> bool:
    """Whether the audit's sub-runs use the run's SAE: its layer is a frozen block of every reward model the run
    trains (so a planted RM computes the same vectors there as the clean one), and `audit.share_sae` is on."""
    layer = cfg.activations.layer
    frozen = layer is not None and 1 <= layer <= cfg.rm.freeze_layers
    return cfg.audit.share_sae and frozen and not cfg.model.reward_model and not cfg.sae.path


def subrun_config(cfg: Config, root: Path, plan: Repeat, sae: Path | None = None) -> Config:
    """A repeat's config: the parent's, in <run>/audit/repeat-<i>, one seed, its own reward model (never an
    existing one: the point is a model trained on the planted set), the detectors on, nothing of the sweep;
    `sae`: the run's SAE, to use instead of training one (see `shares_sae`).
    No reward attribution unless the features rank by it: no detector reads it (2 min of the demo's audit)."""
    sub = _one_seed(cfg, plan.seed)
    sub.run.dir = str(root)
    if sae is not None:
        sub.sae.path = str(sae)
    sub.sae.seed = cfg.sae.seed + plan.index
    sub.audit.enabled = sub.causal.enabled = sub.eval.pool = False
    sub.detect.enabled = True
    # the stage still runs when features.salience is attribution (stages.inputs.attribution_enabled)
    sub.attribution.enabled = False
    sub.curation.methods = []
    return sub


def audit_rows(result: dict) -> list[dict]:
    """One row per (detector, population): every metric with its interval, and the detector's cost."""
    rows = []
    for name, pops in result["detectors"].items():
        for pop, metrics in pops.items():
            row = {"detector": name, "pairs": pop, "cost_s": result["cost_s"].get(name)}
            for m, v in metrics.items():
                row.update({m: v["value"], f"{m}_low": v["low"], f"{m}_high": v["high"]})
            row["n"] = metrics["auroc"]["n"]
            row["positives"] = metrics["auroc"]["positives"]
            row["repeats"] = metrics["auroc"]["seeds"]
            rows.append(row)
    return rows
