"""Only what the reward reads: the last block of a reward model whose head reads one position (BERT's pooler
reads the first token) computes that position alone. Its keys and values still come from every position; the
query, the attention output and the feed-forward part run on one row instead of every token. The reward is the
same up to floating-point rounding, and most of the last block's work is gone: with the lower blocks frozen and
cached, training and scoring such a reward model costs a fraction of the full pass (`bench/rm_bench.py`).

Used where only the reward is needed (training, scoring, attribution and the SAE splice below the last block);
never where the last block's states at every position are read (extraction, `output_hidden_states`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .layers import transformer_blocks

FIRST_POSITION_HEADS = ("BertForSequenceClassification",)
"""Reward-model classes whose head reads the last block's output at position 0 only (and nothing else of it)."""


def _self_attention(block):
    attention = getattr(block, "attention", None)
    sa = getattr(attention, "self", None)
    needed = ("query", "key", "value", "num_attention_heads", "attention_head_size", "scaling", "dropout")
    if sa is None or not all(hasattr(sa, n) for n in needed):
        return None
    return sa


def reads_first_position(model) -> bool:
    """Whether the shortcut applies: a BERT-style encoder block (self-attention, then feed-forward; no decoder,
    no cross-attention) under a head that reads position 0."""
    if type(model).__name__ not in FIRST_POSITION_HEADS:
        return False
    block = transformer_blocks(model)[-1]
    return (
        _self_attention(block) is not None
        and hasattr(block.attention, "output")
        and hasattr(block, "feed_forward_chunk")
        and not getattr(block, "is_decoder", False)
        and not getattr(block, "add_cross_attention", False)
    )


def _first_position_forward(block):
    sa = _self_attention(block)

    def forward(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs):
        b, n, _ = hidden_states.shape
        heads, size = sa.num_attention_heads, sa.attention_head_size
        first = hidden_states[:, :1]
        q = sa.query(first).view(b, 1, heads, size).transpose(1, 2)
        k = sa.key(hidden_states).view(b, n, heads, size).transpose(1, 2)
        v = sa.value(hidden_states).view(b, n, heads, size).transpose(1, 2)
        mask = attention_mask
        if mask is not None and mask.dim() == 4 and mask.shape[-2] > 1:
            # the query row of position 0 (additive or boolean, as the model made it)
            mask = mask[:, :, :1, :]
        if mask is not None and mask.dtype != torch.bool:
            mask = mask.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=sa.dropout.p if sa.training else 0.0, scale=sa.scaling
        )
        out = out.transpose(1, 2).reshape(b, 1, heads * size)
        return block.feed_forward_chunk(block.attention.output(out, first))

    return forward


@contextlib.contextmanager
def first_position_only(model, enabled: bool = True) -> Iterator[bool]:
    """Within the block, the last block of `model` computes position 0 only where `reads_first_position`
    holds (yields whether it does); a no-op otherwise."""
    on = enabled and reads_first_position(model)
    block = transformer_blocks(model)[-1] if on else None
    if block is None or "forward" in block.__dict__:  # off, or already replaced (e.g. by `Resume`)
        yield False
        return
    block.forward = _first_position_forward(block)
    try:
        yield True
    finally:
        del block.forward
