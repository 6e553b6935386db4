"""SAE stage 1's general text and its batch source: the `general` activation cache, or the vectors streamed
from the clean reward model (`activations.general_source`)."""

from __future__ import annotations

from ...activations import ActivationCache, CacheBatches
from ...activations.stream import StreamBatches
from ...data.records import PreferencePair
from ...errors import StageError
from ...precision import use_bf16
from ..context import RunContext
from ..graph import CLEAN


def general_pairs(ctx: RunContext) -> list[PreferencePair]:
    """The pairs whose texts SAE stage 1 reads: the chat pairs, or every training pair."""
    train = ctx.data.train_pairs(CLEAN)
    general = train if ctx.cfg.activations.general_kind == "all" else [p for p in train if p.kind == "chat"]
    if not general:
        raise StageError(
            "no chat pairs for SAE stage 1 (activations.general_kind=chat); set activations.general_kind=all"
        )
    return general


def stage1_batches(ctx: RunContext, rm, layer: int) -> CacheBatches | StreamBatches:
    """SAE stage 1's batches: from the cache `extract` wrote, or computed by `rm` (an RMHandle) on the fly."""
    ac, sc = ctx.cfg.activations, ctx.cfg.sae
    if ac.general_source == "cache":
        return CacheBatches(ActivationCache(ctx.paths.activations("general")), sc.batch_size, seed=sc.seed)
    return StreamBatches(
        rm.scorer.replace(batch_size=ac.batch_size, bf16=use_bf16(ac.bf16), progress=False),
        general_pairs(ctx),
        layer,
        ac.general_positions,
        sc.batch_size,
        buffer=max(ac.stream_buffer, 2 * sc.batch_size),
        min_gap=ac.min_gap,
        standardize_vectors=ac.standardize,
        dtype=ac.dtype,
        seed=sc.seed,
    )
