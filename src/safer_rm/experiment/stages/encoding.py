"""The SAE encoder the streamed passes over an activation cache use (features, scores, the probe detector)."""

from __future__ import annotations


def encoder(sae):
    """x -> (top-k activations, their latent indices) on the CPU, for the streamed passes over a cache."""

    def encode(x):
        enc = sae.encode(x.to(sae.device))
        return enc.acts.float().cpu(), enc.indices.cpu()

    return encode
