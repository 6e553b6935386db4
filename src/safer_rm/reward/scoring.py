"""Batched reward scoring of any set of texts or pairs."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.records import PreferencePair
from ..models.render import Encoded, Renderer, truncation_counts


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists into (input_ids, attention_mask)."""
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


@torch.inference_mode()
def score_encoded(
    model, encoded: Sequence[Encoded], pad_id: int, batch_size: int = 32, bf16: bool = False,
    desc: str = "scoring", progress: bool = True,
) -> np.ndarray:
    """Reward of every encoded text, in input order (float32)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.zeros(len(encoded), dtype=np.float32)
    batches = length_batches([len(e.input_ids) for e in encoded], batch_size)
    for idx in tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False):
        ids, mask = pad_batch([encoded[i].input_ids for i in idx], pad_id)
        with autocast(device, bf16):
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        out[idx] = logits[:, 0].float().cpu().numpy()
    model.train(was_training)
    return out


@dataclass
class PairScores:
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


def score_pairs(
    model, renderer: Renderer, pairs: Sequence[PreferencePair], batch_size: int = 32, bf16: bool = False,
    desc: str = "scoring pairs", progress: bool = True,
) -> PairScores:
    chosen, rejected = renderer.encode_pairs(pairs)
    rewards = score_encoded(model, chosen + rejected, renderer.tok.pad_token_id, batch_size * 2, bf16, desc, progress)
    n = len(pairs)
    return PairScores(rewards[:n], rewards[n:], truncation_counts(chosen, rejected))
