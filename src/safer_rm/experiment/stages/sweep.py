"""Sweep stages: the edited training sets, the causal test and the poisoning audit."""

from __future__ import annotations

import numpy as np

from ...curation.edits import apply_edit, edit_count, rank_for_edit
from ...data import write_pairs
from ...io import read_csv, write_csv, write_json
from ...reward.evaluate import SECTIONS
from ...reward.train import use_bf16
from ...splice import causal_test
from ..audit import audit_metrics, planted_indices, shared_variant, subrun_config
from ..context import GivenData, RunContext
from ..graph import CLEAN, Key


def edit_settings(cfg, key: Key) -> dict:
    """The settings of one edited set: (mode, method, ratio) from its name and the shared curation keys."""
    mode, method, ratio = key.variant.split("-", 2)
    cc = cfg.curation
    return {
        "curation": {
            "mode": mode,
            "method": method,
            "ratio": float(ratio),
            "scope": cc.scope,
            "stratify": cc.stratify,
            "seed": cc.seed,
        }
    }


def curate(ctx: RunContext, key: Key) -> dict:
    """One edited training set (mode, method, ratio), with a record of every changed pair."""
    s = edit_settings(ctx.cfg, key)["curation"]
    mode, method, ratio = s["mode"], s["method"], s["ratio"]
    cc = ctx.cfg.curation
    train = ctx.train_pairs(CLEAN)
    values = None if method == "random" else ctx.pair_values()[method]
    candidates = [i for i, p in enumerate(train) if cc.scope == "all" or p.kind == "safety"]
    groups = [p.source for p in train] if cc.stratify else None
    chosen = rank_for_edit(mode, method, values, edit_count(len(train), ratio), candidates, cc.seed, groups)
    edit = apply_edit(train, chosen, mode, method, values)
    folder = ctx.run.path("curated", key.variant)
    write_pairs(folder / "train.jsonl", edit.pairs)
    write_csv(folder / "edits.csv", edit.records)
    info = {
        "variant": key.variant,
        "mode": mode,
        "method": method,
        "ratio": ratio,
        "edited": len(edit.records),
        "train_pairs": len(edit.pairs),
        "source_mix": edit.source_mix(),
    }
    write_json(folder / "summary.json", info)
    return info


def causal(ctx: RunContext, key: Key) -> dict:
    """Zero the selected latents inside the clean RM (reconstruction error kept) and compare the margin
    drop on safety and chat evaluation pairs with random latent sets of the same size."""
    cc = ctx.cfg.causal
    sae, layer = ctx.load_sae()
    rm = ctx.reward_model(CLEAN, ctx.seed0)
    result = causal_test(
        rm.model,
        rm.renderer,
        sae,
        layer,
        ctx.selection().latents,
        causal_groups(ctx, cc.max_pairs, cc.seed),
        cc.draws,
        cc.seed,
        batch_size=ctx.cfg.rm.eval_batch_size,
        bf16=use_bf16(ctx.cfg.rm.bf16),
        prefix=rm.prefix,
    )
    if ctx.main:
        write_json(ctx.run.path("causal", "results.json"), result)
    return result


def causal_groups(ctx: RunContext, max_pairs: int | None, seed: int) -> dict[str, list]:
    """Safety and chat evaluation pairs: RewardBench's Safety and Chat sections where present, else the
    held-out pairs by kind."""
    rb = ctx.rewardbench()
    groups = {
        "safety": [p for p in rb if p.meta.get("subset") in SECTIONS["Safety"]],
        "chat": [p for p in rb if p.meta.get("subset") in SECTIONS["Chat"]],
    }
    test = ctx.test_pairs()
    for kind in groups:
        if not groups[kind]:
            groups[kind] = [p for p in test if p.kind == kind]
    rng = np.random.default_rng(seed)
    return {
        k: (
            [v[i] for i in sorted(rng.choice(len(v), max_pairs, replace=False))]
            if max_pairs is not None and len(v) > max_pairs
            else v
        )
        for k, v in groups.items()
        if v
    }


def audit(ctx: RunContext, key: Key) -> dict:
    """Plant random flips in the clean training data; fit RM, SAE and features on the planted set in a
    sub-run (<run>/audit, the same stages); ask how well the SAFER score and the planted RM's own margin rank
    the planted flips first."""
    ac = ctx.cfg.audit
    shared = shared_variant(ctx.cfg)
    if shared is not None:  # the run's own random poisoning at this ratio: its flips and its reward model
        ids = [r["id"] for r in read_csv(ctx.run.path("curated", shared, "edits.csv"))]
        planted_pairs, rm_from = ctx.train_pairs(shared), ctx.rm_dir(shared, ctx.seed0)
    else:
        train = ctx.train_pairs(CLEAN)
        idx = planted_indices(len(train), ac.ratio, ac.seed)
        planted_pairs, rm_from = apply_edit(train, idx, "poison", "random").pairs, None
        ids = [train[i].id for i in idx]
    given = GivenData(
        planted_pairs,
        ctx.test_pairs(),
        {"planted": ids, "shared": shared},
        {"train": len(planted_pairs), "planted": len(ids), "shared_with": shared},
        rm_from=rm_from,
    )
    sub = type(ctx).create(
        subrun_config(ctx.cfg, ctx.run.path("audit")),
        resume=ctx.resume,
        given=given,
        cache_root=ctx.cache_root or ctx.run.path("cache"),
        prefix_caches=ctx.prefix_caches,
    )
    ctx.subrun(sub, ["score"])
    result = audit_metrics(read_csv(sub.scores_path()), set(ids), ac.ratio)
    result["selected_features"] = len(sub.selection().latents)
    result["shared_with"] = shared
    if ctx.main:
        write_json(ctx.run.path("audit", "results.json"), result)
    return result
