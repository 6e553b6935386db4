"""Batched reward scoring of any set of texts or pairs."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import distributed
from ..data.records import PreferencePair
from ..io import quiet
from ..models.batching import autocast, length_batches, pad_batch
from ..models.head_position import first_position_only
from ..models.layers import Resume
from ..models.prefix_cache import PrefixCache
from ..models.render import Encoded, Renderer, truncation_counts


@torch.inference_mode()
def score_encoded(
    model,
    encoded: Sequence[Encoded],
    pad_id: int,
    batch_size: int = 32,
    bf16: bool = False,
    desc: str = "scoring",
    progress: bool = True,
    prefix: PrefixCache | None = None,
) -> np.ndarray:
    """Reward of every encoded text, in input order (float32); a text that occurs several times is scored once.
    With a prefix cache, the frozen lower blocks are read from it (and filled first where missing) instead of
    being recomputed."""
    first: dict[tuple[int, ...], int] = {}
    inverse = np.array([first.setdefault(tuple(e.input_ids), len(first)) for e in encoded], dtype=np.int64)
    if len(first) < len(encoded):
        unique = [encoded[i] for i in np.unique(inverse, return_index=True)[1]]
        return score_encoded(model, unique, pad_id, batch_size, bf16, desc, progress, prefix)[inverse]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    if prefix is not None:
        prefix.fill(model, [e.input_ids for e in encoded], pad_id, batch_size, progress)
    out = np.zeros(len(encoded), dtype=np.float32)
    batches = length_batches([len(e.input_ids) for e in encoded], batch_size)
    mine = distributed.my_share(batches)  # with several processes: every world-th batch, merged below
    with Resume(model, prefix.layer) if prefix is not None else contextlib.nullcontext() as resume:
        for idx in tqdm(mine, desc=desc, unit="batch", disable=quiet(progress), leave=False):
            seqs = [encoded[i].input_ids for i in idx]
            ids, mask = pad_batch(seqs, pad_id)
            feed = (
                resume.feed(prefix.batch(seqs, ids.shape[1]).to(device))
                if resume
                else contextlib.nullcontext()
            )
            with autocast(device, bf16), feed, first_position_only(model):
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            out[idx] = logits[:, 0].float().cpu().numpy()
    if distributed.active():
        for part in distributed.gather_objects({i: out[i] for idx in mine for i in idx}):
            for i, v in part.items():
                out[i] = v
    model.train(was_training)
    return out


@dataclass
class PairRewards:
    chosen: np.ndarray
    rejected: np.ndarray
    truncation: dict[str, int]

    @property
    def margin(self) -> np.ndarray:
        return self.chosen - self.rejected

    @property
    def correct(self) -> np.ndarray:
        """A tie counts as wrong (RewardBench's rule)."""
        return self.chosen > self.rejected


@dataclass(frozen=True)
class Scorer:
    """A reward model ready to score, and how it runs: the one value passed wherever rewards (or states) are
    computed, instead of its parts.

    `batch_size`: texts per forward pass (a pair is two texts); `bf16`: autocast to bfloat16; `prefix`: the
    frozen-block cache its lower blocks are read from (None: computed); `progress`: progress bars."""

    model: torch.nn.Module
    renderer: Renderer
    batch_size: int = 64
    bf16: bool = False
    prefix: PrefixCache | None = None
    progress: bool = True

    def replace(self, **changes) -> Scorer:
        return dataclasses.replace(self, **changes)

    @property
    def pad_id(self) -> int:
        return self.renderer.tok.pad_token_id

    def texts(self, encoded: Sequence[Encoded], desc: str = "scoring") -> np.ndarray:
        """Reward of every encoded text, in input order (see `score_encoded`)."""
        return score_encoded(
            self.model, encoded, self.pad_id, self.batch_size, self.bf16, desc, self.progress, self.prefix
        )


def reward_pairs(scorer: Scorer, pairs: Sequence[PreferencePair], desc: str = "scoring pairs") -> PairRewards:
    """Rewards of both responses of every pair, chosen and rejected sides scored in one pass."""
    chosen, rejected = scorer.renderer.encode_pairs(pairs)
    rewards = scorer.texts(chosen + rejected, desc)
    n = len(pairs)
    return PairRewards(rewards[:n], rewards[n:], truncation_counts(chosen, rejected))
