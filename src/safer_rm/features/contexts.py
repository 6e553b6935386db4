"""Top-activating contexts of chosen latents (docs/method.md §4), by running top-k selection per latent over the
streamed cache (a [latents x batch] activation matrix merged with a running top-M buffer), never by a
Python loop over activations. Contexts are grouped by activated token, best few per token; a latent whose
top activations spread over too many distinct tokens, or that has too few activations, is marked
uninterpretable."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from ..activations.cache import SIDES, ActivationCache
from ..sae.encoded import Encoder, LatentColumns, encoded_batches
from .config import FeaturesConfig
from .types import Context, LatentContexts


@torch.inference_mode()
def top_activations(
    cache: ActivationCache,
    encode: Encoder,
    latents: Sequence[int],
    top_m: int = 100,
    batch_size: int = 4096,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each latent: its `top_m` highest activations, the cache rows they come from, and its number of
    activations overall. Returns (values [L, M], meta [L, M, 4] = pair/side/position/token, counts [L])."""
    latents = list(latents)
    column = LatentColumns(latents)
    best_v = torch.zeros(len(latents), top_m)
    best_meta = torch.full((len(latents), top_m, 4), -1, dtype=torch.long)
    counts = torch.zeros(len(latents), dtype=torch.long)
    for b in encoded_batches(cache, encode, batch_size, "contexts", progress):
        n = b.acts.shape[0]
        s = column(b.indices)
        keep = (s >= 0) & (b.acts > 0)
        dense = torch.zeros(len(latents), n)
        rows = torch.arange(n).unsqueeze(1).expand_as(b.indices)
        dense[s[keep], rows[keep]] = b.acts[keep].float()
        counts += (dense > 0).sum(1)
        meta = torch.stack([b.pair, b.side, b.position, b.token], 1)
        cand_v = torch.cat([best_v, dense], 1)
        cand_meta = torch.cat([best_meta, meta.unsqueeze(0).expand(len(latents), n, 4)], 1)
        top = torch.topk(cand_v, min(top_m, cand_v.shape[1]), dim=1)
        best_v = top.values
        best_meta = torch.gather(cand_meta, 1, top.indices.unsqueeze(-1).expand(-1, -1, 4))
    return best_v, best_meta, counts


def _window(tok, seq: np.ndarray, position: int, window: int) -> tuple[str, str, str]:
    left = seq[max(0, position - window) : position].tolist()
    right = seq[position + 1 : position + 1 + window].tolist()
    dec = lambda ids: tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)  # noqa: E731
    return dec(left), dec([int(seq[position])]), dec(right)


def build_contexts(
    cache: ActivationCache,
    tok,
    latents: Sequence[int],
    values: torch.Tensor,
    meta: torch.Tensor,
    counts: torch.Tensor,
    opts: FeaturesConfig,
    salience: np.ndarray | None = None,
) -> tuple[list[LatentContexts], dict[int, str]]:
    """Group each latent's top activations by token and cut text windows. Returns the contexts of every
    latent and, for the uninterpretable ones, the reason."""
    out, rejected = [], {}
    for li, latent in enumerate(latents):
        live = values[li] > 0
        v, m = values[li][live].tolist(), meta[li][live].tolist()
        by_token: dict[int, list[tuple[float, list[int]]]] = defaultdict(list)
        for value, row in zip(v, m):
            by_token[row[3]].append((value, row))
        chosen = []
        for items in by_token.values():
            chosen.extend(sorted(items, key=lambda t: -t[0])[: opts.per_token])
        chosen.sort(key=lambda t: -t[0])
        contexts = []
        for value, (pair, side, position, _token) in chosen[: opts.max_contexts]:
            left, token, right = _window(tok, cache.sequence(pair, side), position, opts.window)
            contexts.append(
                Context(
                    token=token,
                    activation=float(value),
                    left=left,
                    right=right,
                    pair_id=cache.pairs[pair],
                    side=SIDES[side],
                    position=int(position),
                )
            )
        item = LatentContexts(
            int(latent), contexts, float(salience[latent]) if salience is not None else 0.0, len(by_token)
        )
        out.append(item)
        if int(counts[li]) < opts.min_contexts:
            rejected[int(latent)] = f"only {int(counts[li])} activations (< {opts.min_contexts})"
        elif len(by_token) > opts.max_distinct_tokens:
            rejected[int(latent)] = f"{len(by_token)} distinct tokens (> {opts.max_distinct_tokens})"
    return out, rejected
