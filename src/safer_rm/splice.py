"""An SAE spliced into a reward model at its layer: the hidden state is standardised per vector, encoded,
decoded and de-standardised in place of the original. Two uses:

- reward fidelity (the SAE's reconstruction replaces the hidden state): how much accuracy and margin the
  reconstruction costs;
- the causal test (`keep_error=True`): the reconstruction error is added back, so with nothing ablated the
  output is unchanged, and zeroing latents changes the reward only through those latents.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .activations.extract import standardize
from .models.layers import transformer_blocks
from .reward.scoring import reward_pairs
from .sae import TopKSAE


class SAESplice:
    """Context manager: while active, block `layer`'s output goes through the SAE."""

    def __init__(
        self,
        model,
        sae: TopKSAE,
        layer: int,
        keep_error: bool = False,
        ablate: Iterable[int] = (),
        standardized: bool = True,
    ):
        if layer < 1:
            raise ValueError("the SAE can be spliced after a block (layer >= 1)")
        self.model, self.sae, self.layer = model, sae, layer
        self.keep_error, self.standardized = keep_error, standardized
        self.ablate = torch.as_tensor(sorted(set(int(i) for i in ablate)), dtype=torch.long)
        self._handle = None

    def _reconstruct(self, h: torch.Tensor) -> torch.Tensor:
        shape, dtype = h.shape, h.dtype
        flat = h.reshape(-1, shape[-1]).float()
        if self.standardized:
            x, mean, std = standardize(flat)
        else:
            x, mean, std = flat, torch.zeros(flat.shape[0]), torch.ones(flat.shape[0])
        acts, indices = self.sae.encode(x.to(self.sae.device))
        full = self.sae.decode(acts, indices).float().to(flat.device)
        if len(self.ablate):
            hit = torch.isin(indices, self.ablate.to(indices.device))
            part = self.sae.decode(acts.masked_fill(hit, 0), indices).float().to(flat.device)
        else:
            part = full
        scale, shift = (std + 1e-6).unsqueeze(-1), mean.unsqueeze(-1)
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
    model,
    renderer,
    pairs,
    sae: TopKSAE,
    layer: int,
    *,
    keep_error: bool = False,
    ablate: Iterable[int] = (),
    batch_size: int = 32,
    bf16: bool = False,
    prefix=None,
    desc: str = "spliced scoring",
) -> np.ndarray:
    """Reward margins of `pairs` with the SAE spliced in at `layer`."""
    with SAESplice(model, sae, layer, keep_error=keep_error, ablate=ablate):
        return reward_pairs(model, renderer, pairs, batch_size, bf16, desc, prefix=prefix).margin


def reward_fidelity(
    model, renderer, pairs, sae: TopKSAE, layer: int, clean_margin: np.ndarray | None = None, **kw
) -> dict:
    """Pair accuracy of the RM with and without the SAE reconstruction in place of its layer, and the mean
    absolute change of the reward margin."""
    if clean_margin is None:
        clean_margin = reward_pairs(
            model,
            renderer,
            pairs,
            kw.get("batch_size", 32),
            kw.get("bf16", False),
            "clean scoring",
            prefix=kw.get("prefix"),
        ).margin
    spliced = spliced_margins(model, renderer, pairs, sae, layer, **kw)
    return {
        "clean_accuracy": float((clean_margin > 0).mean()),
        "splice_accuracy": float((spliced > 0).mean()),
        "mean_abs_margin_change": float(np.abs(spliced - clean_margin).mean()),
        "pairs": len(pairs),
    }


def causal_test(
    model,
    renderer,
    sae: TopKSAE,
    layer: int,
    selected: Iterable[int],
    groups: dict[str, list],
    draws: int = 5,
    seed: int = 0,
    **kw,
) -> dict:
    """Zero the selected latents (reconstruction error kept) and report, per group of evaluation pairs, the
    mean drop of the reward margin; the same for `draws` sets of as many random latents (never selected
    ones). A drop is clean margin minus ablated margin (positive: the ablation hurt the chosen side)."""
    selected = sorted(set(int(i) for i in selected))
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(np.arange(sae.num_latents), selected)
    random_sets = [
        rng.choice(pool, size=min(len(selected), len(pool)), replace=False).tolist() for _ in range(draws)
    ]
    out: dict = {"n_latents": len(selected), "draws": draws}
    for name, pairs in groups.items():
        base = spliced_margins(
            model, renderer, pairs, sae, layer, keep_error=True, desc=f"{name}: spliced", **kw
        )
        ablated = spliced_margins(
            model,
            renderer,
            pairs,
            sae,
            layer,
            keep_error=True,
            ablate=selected,
            desc=f"{name}: ablated",
            **kw,
        )
        rand = [
            float(
                (
                    base
                    - spliced_margins(
                        model,
                        renderer,
                        pairs,
                        sae,
                        layer,
                        keep_error=True,
                        ablate=s,
                        desc=f"{name}: random {i + 1}",
                        **kw,
                    )
                ).mean()
            )
            for i, s in enumerate(random_sets)
        ]
        out[f"{name}_margin_drop"] = float((base - ablated).mean())
        out[f"random_{name}_margin_drop"] = float(np.mean(rand)) if rand else 0.0
        out[f"random_{name}_margin_drop_std"] = float(np.std(rand)) if rand else 0.0
        out[f"{name}_pairs"] = len(pairs)
        out[f"{name}_accuracy_before"] = float((base > 0).mean())
        out[f"{name}_accuracy_after"] = float((ablated > 0).mean())
    return out
