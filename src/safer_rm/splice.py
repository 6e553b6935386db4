"""An SAE spliced into a reward model at its layer: the hidden state is standardised per vector, encoded,
decoded and de-standardised in place of the original. Two uses:

- reward fidelity (the SAE's reconstruction replaces the hidden state): how much accuracy and margin the
  reconstruction costs;
- the causal test (`keep_error=True`): the reconstruction error is added back, so with nothing ablated the
  output is unchanged, and scaling latents (zeroing, doubling, flipping them) changes the reward only through
  those latents. The test itself and its evaluation groups are in `safer_rm.causal`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
import torch

from .activations.extract import standardize
from .models.layers import transformer_blocks
from .reward.scoring import Scorer, reward_pairs
from .sae import Encoding, TopKSAE


class EncodingMemo:
    """SAE encodings by the content of the vectors encoded, so passes that splice one SAE into the same inputs
    (the causal test's conditions over the same pairs; attribution's base pass after its gradient pass) encode
    each batch once: on CPU the encoder and its top-k are most of a spliced pass. A key is a digest of the
    vectors' bytes and shape, so different inputs never share a code; the oldest entries go past `max_vectors`
    vectors held (k activations and indices each)."""

    def __init__(self, max_vectors: int = 300_000):
        self.max_vectors = max_vectors
        self.entries: OrderedDict[bytes, Encoding] = OrderedDict()
        self.hits = self.misses = 0

    def encode(self, sae: TopKSAE, x: torch.Tensor) -> Encoding:
        data = x.detach().float().contiguous().cpu().numpy()
        key = hashlib.blake2b(data.tobytes(), digest_size=16, person=str(data.shape).encode()[:16]).digest()
        if key in self.entries:
            self.hits += 1
            self.entries.move_to_end(key)
            return self.entries[key]
        self.misses += 1
        acts, indices = sae.encode(x)
        enc = Encoding(acts.detach(), indices)
        self.entries[key] = enc
        held = sum(e.indices.shape[0] for e in self.entries.values())
        while held > self.max_vectors and len(self.entries) > 1:
            held -= self.entries.popitem(last=False)[1].indices.shape[0]
        return enc


def sae_frame(flat: torch.Tensor, standardized: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the SAE reads for hidden vectors `flat` (float, one per row) and the map back to the hidden
    space: `(x, scale, shift)` with `hidden = reconstruction * scale + shift`. Standardised per vector as the
    SAE was trained, or taken as they are (`standardized=False`: scale 1, shift 0)."""
    if standardized:
        x, mean, std = standardize(flat)
        return x, (std + 1e-6).unsqueeze(-1), mean.unsqueeze(-1)
    n = flat.shape[0]
    return flat, flat.new_ones(n, 1), flat.new_zeros(n, 1)


class SAESplice:
    """Context manager: while active, block `layer`'s output goes through the SAE, the activations of the
    latents in `ablate` multiplied by `scale` (0: zeroed, 2: doubled, negative: flipped, 1: unchanged)."""

    def __init__(
        self,
        model,
        sae: TopKSAE,
        layer: int,
        keep_error: bool = False,
        ablate: Iterable[int] = (),
        standardized: bool = True,
        scale: float = 0.0,
        memo: EncodingMemo | None = None,
    ):
        if layer < 1:
            raise ValueError("the SAE can be spliced after a block (layer >= 1)")
        self.model, self.sae, self.layer = model, sae, layer
        self.keep_error, self.standardized = keep_error, standardized
        self.ablate = torch.as_tensor(sorted(set(int(i) for i in ablate)), dtype=torch.long)
        self.scale = float(scale)
        self.memo = memo
        self._handle = None

    def _edit(self, acts: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """`acts` with those of the `ablate` latents multiplied by `scale`."""
        hit = torch.isin(indices, self.ablate.to(indices.device))
        if self.scale == 0.0:
            return acts.masked_fill(hit, 0)
        return torch.where(hit, acts * self.scale, acts)

    def _reconstruct(self, h: torch.Tensor) -> torch.Tensor:
        shape, dtype = h.shape, h.dtype
        flat = h.reshape(-1, shape[-1]).float()
        x, scale, shift = sae_frame(flat, self.standardized)
        x = x.to(self.sae.device)
        acts, indices = self.memo.encode(self.sae, x) if self.memo is not None else self.sae.encode(x)
        full = self.sae.decode(acts, indices).float().to(flat.device)
        if len(self.ablate):
            part = self.sae.decode(self._edit(acts, indices), indices).float().to(flat.device)
        else:
            part = full
        out = part * scale + shift
        if self.keep_error:
            out = out + (flat - (full * scale + shift))
        return out.reshape(shape).to(dtype)

    def _hook(self, _module, _args, output):
        if isinstance(output, tuple):
            return (self._reconstruct(output[0]), *output[1:])
        return self._reconstruct(output)

    def __enter__(self) -> SAESplice:
        self._handle = transformer_blocks(self.model)[self.layer - 1].register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def spliced_margins(
    scorer: Scorer,
    pairs,
    sae: TopKSAE,
    layer: int,
    *,
    keep_error: bool = False,
    ablate: Iterable[int] = (),
    scale: float = 0.0,
    desc: str = "spliced scoring",
    standardized: bool = True,
    memo: EncodingMemo | None = None,
) -> np.ndarray:
    """Reward margins of `pairs` with the SAE spliced in at `layer` (the `ablate` latents scaled by `scale`).
    `standardized`: the SAE was trained on per-vector standardised states (`activations.standardize`); `memo`:
    encodings shared with other passes over the same pairs."""
    splice = SAESplice(
        scorer.model,
        sae,
        layer,
        keep_error=keep_error,
        ablate=ablate,
        scale=scale,
        standardized=standardized,
        memo=memo,
    )
    with splice:
        return reward_pairs(scorer, pairs, desc).margin


def reward_fidelity(
    scorer: Scorer, pairs, sae: TopKSAE, layer: int, clean_margin: np.ndarray | None = None, **kw
) -> dict:
    """Pair accuracy of the RM with and without the SAE reconstruction in place of its layer, and the mean
    absolute change of the reward margin."""
    if clean_margin is None:
        clean_margin = reward_pairs(scorer, pairs, "clean scoring").margin
    spliced = spliced_margins(scorer, pairs, sae, layer, **kw)
    return {
        "clean_accuracy": float((clean_margin > 0).mean()),
        "splice_accuracy": float((spliced > 0).mean()),
        "mean_abs_margin_change": float(np.abs(spliced - clean_margin).mean()),
        "pairs": len(pairs),
    }
