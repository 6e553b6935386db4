"""The TopK sparse autoencoder of docs/method.md §2, on EleutherAI sparsify's `SparseCoder`.

    z = TopK_k(W_enc (x - b_pre) + b_lat),   x_hat = W_dec z + b_pre,   unit-norm decoder directions.

`SparseCoder` (eai-sparsify 1.3.3) is the module because it was the fastest on CPU (fused encoder
backward, `embedding_bag` decoder). How it maps onto the method, and where it differs:

- Names: b_pre is `b_dec`, b_lat is `encoder.bias`, W_enc is `encoder.weight` [latents, d]. W_dec is stored
  as `W_dec` [latents, d]: one decoder direction per row, the transpose of the method's [d, latents].
- It does subtract `b_dec` before encoding (as the method does; only transcoders skip that).
- It applies a ReLU before the top-k: z = TopK_k(ReLU(W_enc (x - b_pre) + b_lat)). The selected values are
  those of ReLU(TopK_k(.)); when fewer than k pre-activations are positive some of the k "active" latents
  are exactly 0, so the real L0 can be below k (the metrics count nonzeros).
- Initialisation: `encoder` is torch's default `nn.Linear` init with zero bias, W_dec a copy of the encoder
  weight normalised to unit rows (tied init), b_dec zero. The trainer then sets b_pre to the mean of the
  first batch, as sparsify's own Trainer does.
- `forward` reports `fvu` (squared error over the batch's variance around its mean), not the method's
  normalised MSE. The trainer does not call it: it encodes with encoder.py (sparsify's forward, a faster
  weight gradient) and decodes with `decode`, and computes the method's loss itself (see train.py).
- Its AuxK loss (`forward(dead_mask=...)`) never reaches the dead latents' encoder rows, so it cannot revive
  them; auxk.py has a working one (see there).
- `set_decoder_norm_to_unit_norm` divides by (norm + eps); `forward` autocasts to bf16 only on CUDA.
- Importing sparsify prints a Triton banner on stdout; it is captured here and logged at debug level.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .config import SAEConfig

log = logging.getLogger(__name__)

if not torch.cuda.is_available():
    # sparsify picks its Triton decoder whenever triton imports (a CUDA build of torch brings it), but the
    # kernel needs a GPU: on a CPU-only machine use the eager decoder
    os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")

with contextlib.redirect_stdout(io.StringIO()) as _banner:
    from sparsify import SparseCoder, SparseCoderConfig
    from sparsify.utils import decoder_impl
if _banner.getvalue().strip():
    log.debug("sparsify: %s", _banner.getvalue().strip())

__all__ = ["DTYPES", "Encoding", "SparseCoder", "SparseCoderConfig", "TopKSAE", "decoder_impl"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class Encoding(NamedTuple):
    """The k selected latents of each vector."""

    acts: Tensor
    """[N, k] activations (>= 0; some may be 0, see the module docstring)."""
    indices: Tensor
    """[N, k] latent indices."""


class TopKSAE(nn.Module):
    """A thin wrapper over `sparsify.SparseCoder` (kept as `.coder`, saved and loaded in sparsify's layout)."""

    def __init__(self, coder: SparseCoder):
        super().__init__()
        self.coder = coder

    @classmethod
    def create(cls, d_in: int, cfg: SAEConfig, device: str | torch.device = "cpu") -> TopKSAE:
        """A freshly initialised SAE for vectors of width `d_in`, seeded by `cfg.seed` (the global RNG is untouched)."""
        coder_cfg = SparseCoderConfig(
            num_latents=cfg.latents_for(d_in), k=cfg.k, expansion_factor=cfg.expansion
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            coder = SparseCoder(d_in, coder_cfg, device="cpu", dtype=DTYPES[cfg.dtype])
        return cls(coder.to(device))

    @property
    def d_in(self) -> int:
        return self.coder.d_in

    @property
    def num_latents(self) -> int:
        return self.coder.num_latents

    @property
    def k(self) -> int:
        return self.coder.cfg.k

    @property
    def device(self) -> torch.device:
        return self.coder.device

    @property
    def dtype(self) -> torch.dtype:
        return self.coder.dtype

    @property
    def W_enc(self) -> Tensor:
        """[latents, d] encoder weight."""
        return self.coder.encoder.weight

    @property
    def b_lat(self) -> Tensor:
        """[latents] encoder bias."""
        return self.coder.encoder.bias

    @property
    def W_dec(self) -> Tensor:
        """[latents, d] decoder directions, one per row (unit length after training)."""
        assert self.coder.W_dec is not None, "SparseCoder built without a decoder"
        return self.coder.W_dec

    @property
    def b_pre(self) -> Tensor:
        """[d] bias subtracted before encoding and added after decoding (sparsify's `b_dec`)."""
        return self.coder.b_dec

    def encode(self, x: Tensor) -> Encoding:
        """[N, d] vectors -> the k selected latents of each."""
        acts, indices, _ = self.coder.encode(x.to(self.dtype))
        return Encoding(acts, indices)

    def decode(self, acts: Tensor, indices: Tensor) -> Tensor:
        """[N, k] activations and indices -> [N, d] reconstructions."""
        return self.coder.decode(acts, indices)

    def forward(self, x: Tensor) -> Tensor:
        """[N, d] vectors -> [N, d] reconstructions."""
        return self.decode(*self.encode(x))

    def dense(self, x: Tensor) -> Tensor:
        """[N, d] vectors -> [N, latents] latent activations, zero outside each vector's top k."""
        acts, indices = self.encode(x)
        return acts.new_zeros(x.shape[0], self.num_latents).scatter_(1, indices, acts)
