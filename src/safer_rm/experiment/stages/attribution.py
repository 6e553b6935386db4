"""The attribution stage: every latent's reward attribution on every training pair (safer_rm.attribution),
checked against exact ablation on a sample. The features stage ranks by it (`features.salience: attribution`)
and shows it on the dashboard; the score stage decomposes each pair's margin with it."""

from __future__ import annotations

import numpy as np
from safetensors.torch import load_file

from ...attribution import attribute_pairs, check_against_ablation
from ...attribution_record import Attribution
from ...errors import StageError
from ...io import save_tensors, write_json
from .. import artifacts as A
from ..context import RunContext
from ..graph import CLEAN, Key
from .inputs import attribution_enabled


def attribute(ctx: RunContext, key: Key) -> dict:
    """Attribution of every latent on both responses of every training pair (clean RM, first seed)."""
    ac = ctx.cfg.attribution
    sae, layer = ctx.models.load_sae()
    rm = ctx.models.reward_model(CLEAN, ctx.seed0)
    train = ctx.data.train_pairs(CLEAN)
    att = attribute_pairs(
        rm.scorer.replace(batch_size=2 * ac.batch_size),
        train,
        sae,
        layer,
        ctx.cfg.activations.standardize,
    )
    check = None
    if ac.check_pairs and ac.check_latents:
        rng = np.random.default_rng(ac.seed)
        sample = sorted(rng.choice(len(train), min(ac.check_pairs, len(train)), replace=False))
        mean_abs = np.zeros(att.num_latents)
        np.add.at(mean_abs, att.latents, np.abs(att.values))
        latents = [int(i) for i in np.argsort(-mean_abs, kind="stable")[: ac.check_latents]]
        check = check_against_ablation(
            rm.scorer,
            [train[i] for i in sample],
            att,
            sae,
            layer,
            latents,
            standardized=ctx.cfg.activations.standardize,
        )
    margin = att.margin
    latent_margin = att.total[:, 0] - att.total[:, 1]
    info = {
        "pairs": len(train),
        "layer": layer,
        "mean_abs_margin": float(np.abs(margin).mean()),
        "mean_latent_margin": float(latent_margin.mean()),
        "mean_base_margin": float((att.base[:, 0] - att.base[:, 1]).mean()),
        "mean_abs_nonlinear_margin": float(np.abs(att.nonlinear[:, 0] - att.nonlinear[:, 1]).mean()),
        "mean_active_latents_per_pair": float(np.diff(att.indptr).mean()),
        "check": check,
    }
    save_tensors(ctx.run.file(A.ATTRIBUTION), att.tensors())
    write_json(ctx.run.file(A.ATTRIBUTION_SUMMARY), {**info, "pair_ids": att.pair_ids})
    return info


def read_attribution(ctx: RunContext) -> Attribution | None:
    """The run's attribution, matched to its training pairs; None when the stage is off."""
    if not attribution_enabled(ctx.cfg):
        return None
    path = ctx.run.file(A.ATTRIBUTION)
    if not path.is_file():
        raise StageError(f"{path} is missing; run `safer attribute`")
    train = ctx.data.train_pairs(CLEAN)
    att = Attribution.from_tensors(load_file(str(path)), [p.id for p in train], [p.kind for p in train])
    if len(att.indptr) != len(train) + 1:
        raise StageError(f"{path}: attribution of {len(att.indptr) - 1} pairs, {len(train)} training pairs")
    return att
