"""Checks of the features stage's selection: the specificity cut (ablating a candidate moves safety margins
more than chat margins) and the judge's AUROC on the labelled probe set."""

from __future__ import annotations

import logging

import numpy as np

from ...data.load import data_root
from ...errors import DataError, StageError
from ...features.judges.probe import build_probe, evaluate_probe
from ...features.selection import Selection
from ...features.specificity import specific_candidates, specificity_pairs
from ...splice import spliced_margins
from ..context import RunContext
from ..graph import CLEAN

log = logging.getLogger(__name__)


def specific_selection(ctx: RunContext, sae, layer: int, selection, ranked: np.ndarray):
    """The selection cut to candidates whose ablation moves held-out safety margins at least
    `features.specificity` times more than chat margins (tested best first until `top_n` are kept)."""
    fc = ctx.cfg.features
    safety, chat = specificity_pairs(ctx.data.test_pairs(), fc.specific_pairs, ctx.cfg.data.seed)
    if not safety or not chat:
        raise StageError(
            f"features.specific needs held-out safety and chat pairs; the test split has "
            f"{len(safety)} safety and {len(chat)} chat pairs"
        )
    scorer = ctx.models.scorer(CLEAN, ctx.seed0)
    pairs = safety + chat

    def margins(latents):
        return spliced_margins(
            scorer,
            pairs,
            sae,
            layer,
            keep_error=True,
            ablate=latents,
            desc="specificity",
            standardized=ctx.cfg.activations.standardize,
        )

    spec = specific_candidates(selection.candidates, margins, len(safety), fc.specificity, fc.top_n)
    keep = set(spec.kept)
    reasons = dict(selection.reasons)
    reasons.update(spec.reasons)
    for latent in selection.candidates:
        if latent not in keep and latent not in reasons:
            reasons[latent] = f"not tested: {fc.top_n} specific features found first"
    kept = [i for i in selection.candidates if i in keep]
    cut = Selection(
        safe=[i for i in kept if ranked[i] > 0],
        unsafe=[i for i in kept if ranked[i] < 0],
        candidates=selection.candidates,
        reasons=reasons,
    )
    return cut, spec.to_json({"safety": len(safety), "chat": len(chat)}, fc.specificity)


def judge_probe(ctx: RunContext, judge) -> dict | None:
    """The judge's AUROC on the labelled probe set from the data mirror (offline judges only)."""
    if ctx.cfg.judge.kind not in ("embedding", "hf"):
        return None
    try:
        probe = build_probe(data_root(ctx.cfg.data.root))
    except (FileNotFoundError, DataError) as err:
        log.info("judge probe skipped: %s", err)
        return None
    return evaluate_probe(judge.judge(probe.items), probe)
