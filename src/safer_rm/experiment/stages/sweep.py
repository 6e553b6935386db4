"""Sweep stages: the edited training sets and the causal test."""

from __future__ import annotations

from ...causal import best_of_n_groups, causal_test, evaluation_groups
from ...curation.edits import apply_edit, edit_count, rank_for_edit
from ...curation.export import Card, export_pairs
from ...data import write_pairs
from ...io import write_csv, write_json
from .. import artifacts as A
from ..context import RunContext
from ..graph import CLEAN, Key
from .inputs import edit_settings


def curate(ctx: RunContext, key: Key) -> dict:
    """One edited training set (mode, method, ratio), with a record of every changed pair."""
    s = edit_settings(ctx.cfg, key)["curation"]
    mode, method, ratio = s["mode"], s["method"], s["ratio"]
    cc = ctx.cfg.curation
    train = ctx.data.train_pairs(CLEAN)
    values = None if method == "random" else ctx.paths.pair_scores([p.id for p in train]).values()[method]
    candidates = [i for i, p in enumerate(train) if cc.scope == "all" or p.kind == "safety"]
    groups = [p.source for p in train] if cc.stratify else None
    chosen = rank_for_edit(mode, method, values, edit_count(len(train), ratio), candidates, cc.seed, groups)
    edit = apply_edit(train, chosen, mode, method, values)
    folder = ctx.run.file(A.CURATED_DIR, variant=key.variant)
    write_pairs(folder / "train.jsonl", edit.pairs)
    write_csv(folder / "edits.csv", edit.records)
    card: Card = {
        "title": f"{ctx.cfg.run.name}: {key.variant}",
        "summary": f"The training set of safer-rm run `{ctx.cfg.run.name}`, variant `{key.variant}`.",
        "sources": ctx.data.source_origins(),
        "ratio": ratio,
        "settings": s,
    }
    export_pairs(edit.pairs, folder, records=edit.records, card=card)  # train.parquet, export.jsonl, card
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
    """Scale the selected latents inside the clean RM (reconstruction error kept) by each of `causal.scales`
    and compare accuracy and margins on every RewardBench section and the held-out pairs with the unedited
    RM and with random latent sets of the same size, with bootstrap intervals (`eval.bootstrap`)."""
    cc = ctx.cfg.causal
    sae, layer = ctx.models.load_sae()
    result = causal_test(
        ctx.models.scorer(CLEAN, ctx.seed0),
        sae,
        layer,
        ctx.paths.selection().latents,
        causal_groups(ctx, cc.max_pairs, cc.seed),
        cc.draws,
        cc.seed,
        scales=cc.scales,
        n_boot=ctx.cfg.eval.bootstrap,
        standardized=ctx.cfg.activations.standardize,
    )
    if ctx.main:
        write_json(ctx.run.file(A.CAUSAL), result)
    return result


def causal_groups(ctx: RunContext, max_pairs: int | None, seed: int) -> dict[str, list]:
    """The run's RewardBench sections and its held-out pairs by kind, each a seeded sample of at most
    `max_pairs` pairs (see `safer_rm.causal.evaluation_groups`), and with `eval.rewardbench2` its subsets but
    Ties, each a sample of whole rows (`safer_rm.causal.best_of_n_groups`)."""
    groups = evaluation_groups(ctx.data.rewardbench(), ctx.data.test_pairs(), max_pairs, seed)
    if ctx.cfg.eval.rewardbench2:
        groups.update(best_of_n_groups(ctx.data.rewardbench2_set().pairs, max_pairs, seed))
    return groups
