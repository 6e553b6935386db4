"""An activation cache's vectors encoded by an SAE, batch by batch in cache order: the one streamed pass that
salience, contexts and the pair scores each make over the cache (one progress bar each)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..activations.cache import ActivationCache
from ..io import quiet

Encoder = Callable[[Tensor], tuple[Tensor, Tensor]]
"""[N, d] vectors -> ([N, k] top-k activations, [N, k] their latent indices), e.g. a `TopKSAE.encode`."""


class EncodedBatch(NamedTuple):
    """A batch of cache vectors: where each comes from and its k selected latents."""

    pair: Tensor
    """[N] index into the cache's pairs (int64)."""
    side: Tensor
    """[N] 0 chosen, 1 rejected (int64)."""
    position: Tensor
    """[N] token position in the rendered sequence (int64)."""
    token: Tensor
    """[N] token id at that position (int64)."""
    acts: Tensor
    """[N, k] activations, as the encoder returns them; [N, 0] when nothing was encoded."""
    indices: Tensor
    """[N, k] latent indices (int64)."""

    @property
    def response(self) -> Tensor:
        """[N] pair * 2 + side: the row of each vector's response in per-response arrays (pair p's chosen
        response at 2p, its rejected one at 2p + 1)."""
        return self.pair * 2 + self.side


def encoder(sae):
    """x -> (top-k activations, their latent indices) on the CPU, for the streamed passes over a cache."""

    def encode(x):
        enc = sae.encode(x.to(sae.device))
        return enc.acts.float().cpu(), enc.indices.cpu()

    return encode


@torch.no_grad()
def encoded_batches(
    cache: ActivationCache,
    encode: Encoder | None,
    batch_size: int,
    desc: str,
    progress: bool = True,
) -> Iterator[EncodedBatch]:
    """Every vector of `cache` in cache order, `batch_size` at a time (batches do not cross shards), with
    what `encode` makes of the vectors (given as float32); `encode=None` reads the index fields alone (acts
    and indices are then [N, 0]). One progress bar named `desc`, off when `quiet(progress)`."""
    for batch in tqdm(
        cache.iter_batches(batch_size),
        desc=desc,
        unit="batch",
        disable=quiet(progress),
        total=cache.batch_count(batch_size),
        leave=False,
    ):
        if encode is None:
            acts, indices = torch.zeros(batch.x.shape[0], 0), torch.zeros(batch.x.shape[0], 0)
        else:
            acts, indices = encode(batch.x.float())
        yield EncodedBatch(
            batch.pair.long(),
            batch.side.long(),
            batch.position.long(),
            batch.token.long(),
            acts,
            indices.long(),
        )


class LatentColumns:
    """Maps latent indices to their column in a list of chosen latents (-1 for any other latent), for
    scattering an encoding's activations into a [.., len(latents)] array. A latent listed twice maps to its
    last column."""

    def __init__(self, latents: Sequence[int]):
        self.lookup = torch.full((max(latents) + 1 if len(latents) else 1,), -1, dtype=torch.long)
        for column, latent in enumerate(latents):
            self.lookup[latent] = column

    def __call__(self, indices: Tensor) -> Tensor:
        """[N, k] latent indices -> [N, k] columns (-1 where the latent is not listed)."""
        size = self.lookup.shape[0]
        return torch.where(
            indices < size, self.lookup[indices.clamp(max=size - 1)], torch.full_like(indices, -1)
        )
