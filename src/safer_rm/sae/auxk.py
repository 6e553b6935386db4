"""The AuxK loss of Gao et al. (2024, appendix A.2), which revives dead latents: the top `k_aux` dead latents
of each vector, on their own, reconstruct the residual x - x_hat that the live latents leave.

sparsify 1.3.3 has the same loss inside `SparseCoder.forward(dead_mask=...)`, but there it cannot revive
anything: its fused encoder's backward ignores the gradient of `pre_acts`, so the loss reaches only the dead
latents' decoder rows, never their encoder rows or biases, and a latent that never makes the top k stays
that way (tests/test_sae.py checks this). Here the dead latents' pre-activations are recomputed with autograd,
for the dead latents only, so the cost grows with their number and is nil when none is dead.

Choices as in sparsify: k_aux = d // 2, the loss is scaled by min(dead / k_aux, 1), and the residual target is
detached. b_pre is detached too, so the loss moves only the dead latents' own parameters.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .model import SparseCoder, decoder_impl


def auxk_loss(coder: SparseCoder, x: Tensor, x_hat: Tensor, dead: Tensor, denominator: Tensor) -> Tensor:
    """AuxK loss over the batch `x` [B, d] reconstructed as `x_hat`, for the latents flagged in the bool mask
    `dead` [latents], divided by `denominator` (the trainer passes sum ||x||^2)."""
    dead_idx = dead.nonzero().squeeze(1)
    half = x.shape[1] // 2
    if dead_idx.numel() == 0 or half == 0:
        return x.new_zeros(())
    k_aux = min(half, dead_idx.numel())
    pre = F.relu(
        F.linear(x - coder.b_dec.detach(), coder.encoder.weight[dead_idx], coder.encoder.bias[dead_idx])
    )
    acts, local = pre.topk(k_aux, sorted=False)
    assert coder.W_dec is not None, "SparseCoder built without a decoder"
    e_hat = decoder_impl(dead_idx[local], acts.to(coder.dtype), coder.W_dec.mT)
    scale = min(dead_idx.numel() / half, 1.0)
    return scale * (e_hat - (x - x_hat).detach()).pow(2).sum() / denominator
