"""An in-memory batch source for the trainer: re-iterable, sized, reshuffled every epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


class TensorBatches:
    """[B, d] batches of the rows of a [N, d] tensor. Each `iter()` is one epoch; with `shuffle`, epoch e
    uses the order drawn from `seed + e`, so a run is reproducible and epochs differ."""

    def __init__(
        self, data: Tensor, batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_last: bool = True
    ):
        if data.ndim != 2:
            raise ValueError(f"expected [N, d] vectors, got shape {tuple(data.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data, self.batch_size, self.shuffle, self.seed, self.drop_last = (
            data,
            batch_size,
            shuffle,
            seed,
            drop_last,
        )
        self.epoch = 0

    def __len__(self) -> int:
        n = self.data.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Tensor]:
        n = self.data.shape[0]
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(n)
        self.epoch += 1
        for i in range(len(self)):
            yield self.data[order[i * self.batch_size : (i + 1) * self.batch_size].to(self.data.device)]
