"""Detector stages: the folds of the out-of-fold margin, every detector's value per pair, the inspection
(suspects, a cleaned set) and the poisoning audit that measures the detectors on planted flips."""

from __future__ import annotations

import logging
import time
from collections import Counter

import numpy as np

from ...curation.detectors import (
    DEFINITIONS,
    DETECTORS,
    assign_folds,
    auroc_differences,
    bootstrap_rankings,
    combine_ranks,
    detector_metrics,
    percentile_ranks,
    probe_oof,
)
from ...curation.edits import apply_edit, edit_count
from ...data import read_pairs, write_pairs
from ...errors import StageError
from ...io import read_csv, read_json, write_csv, write_json
from ...report.suspects import write_suspects_page
from .. import artifacts as A
from ..audit import audit_rows, planted_indices, repeat_plan, shares_sae, subrun_config
from ..context import GivenData, RunContext
from ..graph import CLEAN, Key, ensemble_seeds, fold_variants
from .detector_values import _train_seconds, probe_features, spearman_matrix
from .inspection import cleaned_set, feature_labels, pick_detector, suspect_rows

log = logging.getLogger(__name__)


def folds(ctx: RunContext, key: Key) -> dict:
    """Split the clean training pairs into K folds (pairs sharing a prompt stay together): fold i's reward
    model trains on the others and scores fold i."""
    train = ctx.data.train_pairs(CLEAN)
    groups = len({p.prompt_key() for p in train})
    if groups < ctx.cfg.detect.folds:
        raise StageError(
            f"detect.folds={ctx.cfg.detect.folds} but the training pairs have only {groups} prompts"
        )
    fold = assign_folds(train, ctx.cfg.detect.folds, ctx.cfg.detect.seed)
    for i, variant in enumerate(fold_variants(ctx.cfg)):
        write_pairs(ctx.paths.train(variant), [p for p, f in zip(train, fold) if f != i])
        write_pairs(ctx.paths.heldout_fold(variant), [p for p, f in zip(train, fold) if f == i])
    write_csv(
        ctx.run.file(A.FOLD_ASSIGNMENT),
        [{"id": p.id, "fold": int(f)} for p, f in zip(train, fold)],
    )
    return {"folds": ctx.cfg.detect.folds, "sizes": np.bincount(fold).tolist()}


def detect(ctx: RunContext, key: Key) -> dict:
    """Every detector's value for every training pair (detect/scores.csv) and each one's cost in seconds."""
    dc, s0 = ctx.cfg.detect, ctx.seed0
    train = ctx.data.train_pairs(CLEAN)
    scores = ctx.paths.pair_scores([p.id for p in train])
    values = {"safer": scores.safer, "margin": scores.reward_margin}
    seconds = ctx.run.stage_seconds()
    safer_cost = sum(seconds.get(s, 0.0) for s in ("extract", "train-sae", "features", "score"))
    cost = {"safer": safer_cost, "margin": _train_seconds(ctx, CLEAN, s0) + seconds.get("score", 0.0)}
    extra: dict[str, np.ndarray] = {}
    fold = None
    variants = fold_variants(ctx.cfg)
    if variants:
        fold = np.full(len(train), -1)
        oof = np.zeros(len(train))
        by_id = {p.id: i for i, p in enumerate(train)}
        started = time.time()
        for i, variant in enumerate(variants):
            held = read_pairs(ctx.paths.heldout_fold(variant))
            idx = np.array([by_id[p.id] for p in held], dtype=np.int64)
            fold[idx] = i
            oof[idx] = ctx.models.margins(variant, s0, held, f"out-of-fold margins {i + 1}/{len(variants)}")
        values["oof_margin"] = oof
        cost["oof_margin"] = time.time() - started + sum(_train_seconds(ctx, v, s0) for v in variants)
    seeds = ensemble_seeds(ctx.cfg)
    if seeds:
        started = time.time()
        margins = [values["margin"]] + [
            ctx.models.margins(CLEAN, s, train, f"ensemble margins (seed {s})") for s in seeds if s != s0
        ]
        values["ensemble"] = np.mean(margins, axis=0)
        extra["ensemble_sd"] = np.std(margins, axis=0, ddof=1)
        cost["ensemble"] = time.time() - started + sum(_train_seconds(ctx, CLEAN, s) for s in seeds)
    if dc.probe:
        started = time.time()
        values["probe"] = probe_oof(
            probe_features(ctx), fold if fold is not None else assign_folds(train, 5, dc.seed), dc.probe_l2
        )
        cost["probe"] = time.time() - started + safer_cost
    second = "oof_margin" if "oof_margin" in values else "margin"
    values["combined"] = combine_ranks(values["safer"], values[second])
    cost["combined"] = cost["safer"] + cost[second]
    if "probe" in values:
        values["combined_probe"] = combine_ranks(values["probe"], values[second])
        cost["combined_probe"] = cost["probe"] + cost[second]
    if not ctx.main:
        return None
    out = []
    for i, p in enumerate(train):
        row = {"id": p.id, "source": p.source, "kind": p.kind}
        row.update({name: float(v[i]) for name, v in values.items()})
        row.update({name: float(v[i]) for name, v in extra.items()})
        if fold is not None:
            row["fold"] = int(fold[i])
        out.append(row)
    write_csv(ctx.run.file(A.DETECT_SCORES), out)
    names = [d for d in DETECTORS if d in values]
    definitions = {d: DEFINITIONS[d] for d in names}
    if ctx.cfg.model.reward_model:
        definitions["margin"] = f"the existing reward model's margin ({ctx.cfg.model.reward_model})"
    for d in ("combined", "combined_probe"):
        if d in definitions:
            definitions[d] = definitions[d].replace("oof_margin", second)
    info = {
        "detectors": names,
        "definitions": definitions,
        "combined_with": second,
        "cost_s": {d: round(cost[d], 1) for d in names},
        "folds": len(variants),
        "ensemble_seeds": seeds,
        "spearman": spearman_matrix({d: values[d] for d in names}),
    }
    write_json(ctx.run.file(A.DETECT_SUMMARY), info)
    return info


# ---- the poisoning audit ------------------------------------------------------------------------------
def audit(ctx: RunContext, key: Key) -> dict:
    """Plant random flips in the clean training data; fit RM, SAE, features and every detector on the planted
    set in a sub-run per repeat (<run>/audit/repeat-<i>, the same stages); measure how well each detector ranks
    the planted flips first, over all pairs and over safety pairs alone."""
    ac = ctx.cfg.audit
    train = ctx.data.train_pairs(CLEAN)
    per_repeat: dict[str, list[np.ndarray]] = {}
    planted_masks, safety_masks, repeats = [], [], []
    for plan in repeat_plan(ctx.cfg):
        if plan.shared is not None:  # the run's own random poisoning at this ratio: its flips and its models
            ids = [r["id"] for r in read_csv(ctx.run.file(A.CURATED_EDITS, variant=plan.shared))]
            planted_pairs = ctx.data.train_pairs(plan.shared)
            rm_from = {s: ctx.paths.rm(plan.shared, s) for s in plan.copied_seeds}
        else:
            idx = planted_indices(train, ac.ratio, plan.plant_seed, ac.scope)
            planted_pairs, rm_from = apply_edit(train, idx, "poison", "random").pairs, {}
            ids = [train[i].id for i in idx]
        given = GivenData(
            planted_pairs,
            ctx.data.test_pairs(),
            {
                "planted": ids,
                "shared": plan.shared,
                "copied": sorted(rm_from),
                "train": ctx.data.file_hash(ctx.paths.train(plan.shared or CLEAN)),
                "test": ctx.data.file_hash(ctx.run.file(A.TEST)),
            },
            {"train": len(planted_pairs), "planted": len(ids), "shared_with": plan.shared},
            rm_from=rm_from,
        )
        sub = type(ctx).create(
            subrun_config(
                ctx.cfg,
                ctx.run.file(A.AUDIT_REPEAT, repeat=plan.index),
                plan,
                ctx.paths.sae() if shares_sae(ctx.cfg) else None,
            ),
            resume=ctx.resume,
            given=given,
            parent=ctx,
        )
        ctx.subrun(sub, ["detect"])
        rows = read_csv(sub.run.file(A.DETECT_SCORES))
        planted = set(ids)
        planted_masks.append(np.array([r["id"] in planted for r in rows]))
        safety_masks.append(np.array([r["kind"] == "safety" for r in rows]))
        names = [c for c in DETECTORS if c in rows[0]]
        for name in names:
            per_repeat.setdefault(name, []).append(np.array([float(r[name]) for r in rows]))
        info = read_json(sub.run.file(A.DETECT_SUMMARY))
        repeats.append(
            {
                "repeat": plan.index,
                "seed": plan.seed,
                "planted": len(ids),
                "planted_safety": int((planted_masks[-1] & safety_masks[-1]).sum()),
                "pairs": len(rows),
                "shared_with": plan.shared,
                "selected_features": len(sub.paths.selection().latents),
                "cost_s": info["cost_s"],
            }
        )
    boot = {"n_boot": ctx.cfg.eval.bootstrap, "seed": ac.seed}
    table = bootstrap_rankings(per_repeat, planted_masks, safety_masks, **boot)  # shared by both below
    metrics = detector_metrics(per_repeat, planted_masks, safety_masks, **boot, table=table)
    reference = "oof_margin" if "oof_margin" in per_repeat else "margin"
    versus = auroc_differences(per_repeat, planted_masks, safety_masks, reference, **boot, table=table)
    result = {
        "q": ac.ratio,
        "scope": ac.scope,
        "repeats": len(repeats),
        "planted": repeats[0]["planted"],
        "pairs": repeats[0]["pairs"],
        "shared_with": repeats[0]["shared_with"],
        "selected_features": repeats[0]["selected_features"],
        "detectors": metrics,
        "auroc_versus": {"reference": reference, "differences": versus},
        "cost_s": {
            d: round(float(np.mean([r["cost_s"].get(d, np.nan) for r in repeats])), 1) for d in metrics
        },
        "per_repeat": repeats,
        "definitions": info["definitions"],
    }
    if ctx.main:
        write_json(ctx.run.file(A.AUDIT), result)
        write_csv(ctx.run.file(A.AUDIT_DETECTORS), audit_rows(result))
    return result


# ---- the inspection ------------------------------------------------------------------------------------
def inspect(ctx: RunContext, key: Key) -> dict:
    """Suspect pairs ranked by one detector (all detectors beside it), their top SAFER features, and the
    cleaned training set without the most suspect ones (inspect/cleaned: Parquet, JSONL, a dataset card)."""
    ic = ctx.cfg.inspect
    train = ctx.data.train_pairs(CLEAN)
    rows = read_csv(ctx.run.file(A.DETECT_SCORES))
    info = read_json(ctx.run.file(A.DETECT_SUMMARY))
    names = info["detectors"]
    detector = pick_detector(ic.detector, names)
    values = {d: np.array([float(r[d]) for r in rows]) for d in names}
    pct = {d: percentile_ranks(v) for d, v in values.items()}
    order = np.argsort(values[detector], kind="stable")
    if ic.threshold is not None:
        removed = {int(i) for i in order if values[detector][i] < ic.threshold}
        rule = f"{detector} < {ic.threshold:g}"
    else:
        removed = {int(i) for i in order[: edit_count(len(train), ic.remove)]}
        rule = f"the {ic.remove:g} % lowest by {detector}"
    top = {r["id"]: r.get("top_features", "") for r in read_csv(ctx.paths.scores())}
    suspects = suspect_rows(train, order, removed, names, values, pct, top)
    write_csv(ctx.run.file(A.INSPECT_SUSPECTS), suspects)
    exported = cleaned_set(ctx, train, removed, values[detector], detector, rule, info)
    labels = feature_labels(ctx)
    summary = {
        "detector": detector,
        "rule": rule,
        "pairs": len(train),
        "removed": len(removed),
        "removed_by_source": dict(Counter(train[i].source for i in removed)),
        "reward_model": ctx.cfg.model.reward_model or f"trained here ({ctx.cfg.model.name})",
        "definitions": info["definitions"],
        "cost_s": info["cost_s"],
        "spearman": info["spearman"],
    }
    write_suspects_page(ctx.run.file(A.INSPECT_REPORT), suspects[: ic.show], names, summary, labels)
    write_json(ctx.run.file(A.INSPECT_SUMMARY), {**summary, "exported": exported})
    log.info(
        "inspect: %d of %d pairs flagged by %s (%s); report %s",
        len(removed),
        len(train),
        detector,
        rule,
        ctx.run.file(A.INSPECT_REPORT),
    )
    return {k: summary[k] for k in ("detector", "rule", "pairs", "removed", "removed_by_source")}
