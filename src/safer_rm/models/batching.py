"""Batching helpers shared by every forward pass over token lists: length-grouped batches, right padding,
optional bf16 autocast."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import torch

log = logging.getLogger(__name__)
_ENDS_WITH_PAD_WARNED: set[int] = set()


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists into (input_ids, attention_mask), whatever the tokenizer's `padding_side`.

    Always on the right, on purpose: then every real token keeps the positions 0..n-1 it has unpadded,
    so a batched reward equals the unbatched one without passing `position_ids` (left padding would shift
    the positions of Llama-style decoders unless position ids were computed from the mask), and the cached
    prefix states and the activation positions index tokens from 0. A decoder's `*ForSequenceClassification`
    reads the reward at the rightmost token that is not `pad_id`, so no sequence may end with `pad_id`
    (`registry.load_tokenizer` chooses a pad id that no rendered text ends with); one that does is logged."""
    if pad_id not in _ENDS_WITH_PAD_WARNED and any(len(s) and s[-1] == pad_id for s in seqs):
        _ENDS_WITH_PAD_WARNED.add(pad_id)
        log.warning(
            "a sequence ends with the pad id %d: a decoder reward model reads its reward before that token",
            pad_id,
        )
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), to waste little on padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
