"""Extraction: run the reward model up to the chosen layer only (the blocks above are never computed),
keep the vectors at the positions of a policy, standardise them and stream them into a cache."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from .. import distributed
from ..data.records import PreferencePair
from ..io import quiet, read_json
from ..models.batching import autocast, length_batches, pad_batch
from ..models.layers import Resume, StopForward, stop_at
from ..models.prefix_cache import PrefixCache
from ..models.render import Encoded, Renderer
from ..reward.scoring import Scorer
from .cache import FIELDS, ActivationCache, CacheWriter
from .positions import TokenTexts, select_positions

log = logging.getLogger(__name__)
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def standardize(x: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-vector standardisation over the hidden dimensions (sample std, as the reference's torch.std)."""
    var, mean = torch.var_mean(x, dim=-1, keepdim=True)  # one pass; unbiased like torch.std
    std = var.sqrt_()
    return (x - mean).div_(std + eps), mean.squeeze(-1), std.squeeze(-1)


def layer_states(
    model,
    layer: int,
    ids: torch.Tensor,
    mask: torch.Tensor,
    prefix: PrefixCache | None,
    seqs: Sequence[Sequence[int]],
) -> torch.Tensor:
    """Layer `layer` for a right-padded batch, computing as little as possible: from the prefix cache
    when the layer is the cached one, from the cached layer upwards when it is above it."""
    if prefix is not None and layer == prefix.layer:
        return prefix.batch(seqs, ids.shape[1]).to(ids.device)
    use_prefix = prefix is not None and layer > prefix.layer
    with Resume(model, prefix.layer) if use_prefix else contextlib.nullcontext() as resume:
        feed = (
            resume.feed(prefix.batch(seqs, ids.shape[1]).to(ids.device))
            if use_prefix
            else contextlib.nullcontext()
        )
        with stop_at(model, layer), feed:
            try:
                model(input_ids=ids, attention_mask=mask)
            except StopForward as stop:
                return stop.hidden
    raise RuntimeError("forward pass did not reach the requested layer")


class Kept(NamedTuple):
    x: torch.Tensor
    """[n, d] float32 vectors of the kept positions, in batch order"""
    rows: torch.Tensor
    """row of each vector in the batch (CPU)"""
    cols: torch.Tensor
    """token position of each vector (CPU)"""
    token: torch.Tensor
    """token id at each position"""
    tokens: int
    """tokens of the batch (without padding)"""


def encode_positions(
    renderer: Renderer, pairs: Sequence[PreferencePair], policy: str, min_gap: int
) -> tuple[list[Encoded], list[list[int]]]:
    """Both rendered responses of every pair (pair p side s at 2p + s) and the positions the policy keeps."""
    chosen, rejected = renderer.encode_pairs(pairs)
    encoded = [e for pair in zip(chosen, rejected) for e in pair]
    texts = TokenTexts(renderer.tok)
    return encoded, [select_positions(policy, e.input_ids, e.response_start, texts, min_gap) for e in encoded]


def usable_prefix(model, renderer, encoded, layer, prefix, batch_size, progress=True) -> PrefixCache | None:
    """The prefix cache, filled for these sequences, where it serves `layer` (at or below it); else None."""
    if prefix is None or layer < prefix.layer:
        return None
    prefix.fill(model, [e.input_ids for e in encoded], renderer.tok.pad_token_id, batch_size, progress)
    return prefix


def kept_vectors(
    model,
    layer: int,
    encoded: Sequence[Encoded],
    positions: Sequence[Sequence[int]],
    idx: Sequence[int],
    pad_id: int,
    bf16: bool,
    prefix: PrefixCache | None,
) -> Kept:
    """The one forward pass of extraction (the cache's and the SAE's streamed stage 1): the hidden states of
    sequences `idx` at `layer`, at their kept positions."""
    device = next(model.parameters()).device
    seqs = [encoded[i].input_ids for i in idx]
    ids, mask = pad_batch(seqs, pad_id)
    ids, mask = ids.to(device), mask.to(device)
    with autocast(device, bf16):
        hidden = layer_states(model, layer, ids, mask, prefix, seqs)
    rows = torch.cat([torch.full((len(positions[i]),), r, dtype=torch.long) for r, i in enumerate(idx)])
    cols = torch.cat([torch.as_tensor(positions[i], dtype=torch.long) for i in idx])
    at = (rows.to(device), cols.to(device))
    return Kept(hidden[at].float(), rows, cols, ids[at], int(mask.sum()))


def _unit(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(x.shape[0]), torch.ones(x.shape[0])


@torch.inference_mode()
def extract_pairs(
    scorer: Scorer,
    pairs: Sequence[PreferencePair],
    layer: int,
    policy: str,
    out_dir: str | Path,
    *,
    min_gap: int = 5,
    standardize_vectors: bool = True,
    shard_vectors: int = 65536,
    dtype: str = "float16",
    desc: str = "extracting",
) -> dict:
    """Write the kept vectors of both responses of every pair to a cache at `out_dir`; returns its index."""
    model, renderer, bf16, progress = scorer.model, scorer.renderer, scorer.bf16, scorer.progress
    batch_size, prefix = scorer.batch_size, scorer.prefix
    model.eval()
    encoded, positions = encode_positions(renderer, pairs, policy, min_gap)
    prefix = usable_prefix(model, renderer, encoded, layer, prefix, batch_size, progress)
    meta = {
        "layer": layer,
        "policy": policy,
        "min_gap": min_gap,
        "standardized": standardize_vectors,
        "pairs": [p.id for p in pairs],
        "render": renderer.settings(),
        "dtype": dtype,
    }
    out_dir = Path(out_dir)
    batches = length_batches([len(e.input_ids) for e in encoded], batch_size)
    many = distributed.active()
    # one process writes the cache; several write a part each (tagged with the global batch number) and
    # rank 0 merges the parts in batch order, so the cache is the one a single process would write
    writer = CacheWriter(
        out_dir / f".rank-{distributed.rank()}" if many else out_dir,
        meta,
        shard_vectors,
        DTYPES[dtype],
        with_batch=many,
    )
    if not many:
        for e in encoded:
            writer.add_sequence(e.input_ids)
    d = None
    tokens_seen = 0
    mine = distributed.my_share(list(enumerate(batches)))
    for b, idx in tqdm(mine, desc=desc, unit="batch", disable=quiet(progress), leave=False):
        kept = kept_vectors(model, layer, encoded, positions, idx, renderer.tok.pad_token_id, bf16, prefix)
        x, mean, std = standardize(kept.x) if standardize_vectors else (kept.x, *_unit(kept.x))
        text_idx = torch.as_tensor(idx, dtype=torch.long)[kept.rows]
        writer.add(x, mean, std, text_idx // 2, text_idx % 2, kept.cols, kept.token, batch=b)
        d = x.shape[-1]
        tokens_seen += kept.tokens
    writer.meta["d"] = d if d is not None else 0
    writer.meta["tokens"] = tokens_seen
    if many:
        part = writer.close(tokens=False)
        index = _merge_ranks(
            out_dir,
            meta,
            encoded,
            len(batches),
            shard_vectors,
            DTYPES[dtype],
            {"d": part["d"], "tokens": part["tokens"]},
        )
    else:
        index = writer.close()
    log.info(
        "extracted %d vectors (layer %d, %s) from %d pairs into %s",
        index["vectors"],
        layer,
        policy,
        len(pairs),
        out_dir,
    )
    return index


def _merge_ranks(
    out_dir: Path, meta: dict, encoded, n_batches: int, shard_vectors: int, dtype, mine: dict
) -> dict:
    """Rank 0 streams the ranks' parts into the final cache in global batch order; all ranks get its index.
    `mine`: this rank's part's width and token count."""
    parts = distributed.gather_objects(mine)
    if distributed.is_main():
        writer = CacheWriter(
            out_dir,
            {**meta, "d": max(p["d"] for p in parts), "tokens": sum(p["tokens"] for p in parts)},
            shard_vectors,
            dtype,
        )
        for e in encoded:
            writer.add_sequence(e.input_ids)
        streams = [_batch_groups(ActivationCache(out_dir / f".rank-{r}")) for r in range(distributed.world())]
        ahead: list[tuple[int, dict] | None] = [None] * len(streams)  # each part's next group, read ahead
        for b in range(n_batches):
            r = b % len(streams)
            if ahead[r] is None:
                ahead[r] = next(streams[r], None)
            if ahead[r] is None or ahead[r][0] > b:
                continue  # batch b kept no positions: its rank wrote nothing for it
            got, group = ahead[r]
            if got != b:
                raise RuntimeError(f"merge of extraction parts out of order: batch {got} where {b} was due")
            writer.add(*(group[f] for f in FIELDS))
            ahead[r] = None
        writer.close()
        for r in range(distributed.world()):
            shutil.rmtree(out_dir / f".rank-{r}", ignore_errors=True)
    distributed.barrier()
    return read_json(out_dir / "index.json")


def _batch_groups(cache):
    """(batch number, fields) groups of a rank's part, in its order, streamed shard by shard."""
    pending = None
    for shard in cache.iter_shards((*FIELDS, "batch")):
        ids = shard["batch"]
        starts = [0, *((ids[1:] != ids[:-1]).nonzero().flatten() + 1).tolist(), len(ids)]
        for a, z in zip(starts[:-1], starts[1:]):
            group = {f: shard[f][a:z] for f in (*FIELDS, "batch")}
            if pending is not None and int(pending["batch"][0]) == int(group["batch"][0]):
                pending = {f: torch.cat([pending[f], group[f]]) for f in group}
                continue
            if pending is not None:
                yield int(pending["batch"][0]), pending
            pending = group
    if pending is not None:
        yield int(pending["batch"][0]), pending
