"""SAE stage 1 streamed: the general text's vectors computed from the reward model while the SAE trains, in
forward batches, shuffled through a bounded in-memory buffer, never written to disk.

EleutherAI sparsify trains on activations computed on the fly the same way (its trainer runs the model on a
batch of shuffled documents and feeds the hooked states to the SAE); the buffer adds what a cache's shuffle
gives: one batch of the SAE mixes vectors of many sequences, not the consecutive tokens of a few. Each
iteration is one epoch: the forward batches (sequences of similar length) in an order drawn from
`seed + epoch`; the buffer holds up to `buffer` vectors, is shuffled when full, hands out its first half
as SAE batches and keeps the rest; at the epoch's end what remains is shuffled and handed out in full
batches. Vectors are standardised per vector and rounded to the cache's storage type, as the cache would hold
them, so the SAE sees the same values either way. With several processes each takes every world-th forward
batch and yields `len(self)` batches, as `CacheBatches` does."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch

from .. import distributed
from ..data.records import PreferencePair
from ..models.batching import length_batches
from ..reward.scoring import Scorer
from .extract import DTYPES, encode_positions, kept_vectors, standardize, usable_prefix


class StreamBatches:
    """A re-iterable, sized source of [batch_size, d] float32 batches for `train_sae`, computed by the scorer's
    model up to `layer` at the positions `policy` keeps in both responses of `pairs` (forward passes of
    `scorer.batch_size` texts, in its precision, through its prefix cache)."""

    def __init__(
        self,
        scorer: Scorer,
        pairs: Sequence[PreferencePair],
        layer: int,
        policy: str,
        batch_size: int,
        *,
        buffer: int = 262144,
        min_gap: int = 5,
        standardize_vectors: bool = True,
        dtype: str = "float16",
        seed: int = 0,
    ):
        if buffer < 2 * batch_size:
            raise ValueError(
                f"the stream's buffer ({buffer} vectors) must hold 2 SAE batches of {batch_size}"
            )
        model, renderer, forward_batch = scorer.model, scorer.renderer, scorer.batch_size
        self.model, self.layer, self.batch_size, self.buffer = model, layer, batch_size, buffer
        self.bf16, self.dtype, self.seed = scorer.bf16, DTYPES[dtype], seed
        self.standardize, self.pad_id = standardize_vectors, renderer.tok.pad_token_id
        self.encoded, self.positions = encode_positions(renderer, pairs, policy, min_gap)
        self.prefix = usable_prefix(model, renderer, self.encoded, layer, scorer.prefix, forward_batch, False)
        self.forward = length_batches([len(e.input_ids) for e in self.encoded], forward_batch)
        self.vectors = sum(len(p) for p in self.positions)
        self.epoch = 0

    def __len__(self) -> int:
        """SAE batches per epoch for this process."""
        return max(1, self.vectors // self.batch_size // distributed.world())

    def _vectors(self, order: list[list[int]]) -> Iterator[torch.Tensor]:
        for idx in order:
            with torch.inference_mode():
                kept = kept_vectors(
                    self.model,
                    self.layer,
                    self.encoded,
                    self.positions,
                    idx,
                    self.pad_id,
                    self.bf16,
                    self.prefix,
                )
                x = kept.x
                if self.standardize:
                    x = standardize(x)[0]
            yield x.to(self.dtype)

    def __iter__(self) -> Iterator[torch.Tensor]:
        seed = self.seed + self.epoch
        self.epoch += 1
        order = list(self.forward)
        random.Random(seed).shuffle(order)
        mine = order[distributed.rank() :: distributed.world()]
        gen = torch.Generator().manual_seed(seed)
        held: list[torch.Tensor] = []
        count, served, due = 0, 0, len(self)
        for x in self._vectors(mine):
            held.append(x)
            count += x.shape[0]
            if count < self.buffer:
                continue
            pool = torch.cat(held)
            pool = pool[torch.randperm(pool.shape[0], generator=gen).to(pool.device)]
            out = (pool.shape[0] // 2 // self.batch_size) * self.batch_size
            for i in range(0, out, self.batch_size):
                yield pool[i : i + self.batch_size].float()
                served += 1
                if served == due:
                    return
            held, count = [pool[out:]], pool.shape[0] - out
        if not held:
            return
        pool = torch.cat(held)
        pool = pool[torch.randperm(pool.shape[0], generator=gen).to(pool.device)]
        if served == 0 and 0 < pool.shape[0] < self.batch_size:
            yield pool.float()  # fewer vectors than one batch: all of them (as CacheBatches does)
            return
        for i in range(0, pool.shape[0] - self.batch_size + 1, self.batch_size):
            yield pool[i : i + self.batch_size].float()
            served += 1
            if served == due:
                return
