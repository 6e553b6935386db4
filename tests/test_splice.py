from __future__ import annotations

import numpy as np
import torch

from safer_rm.activations import ActivationCache, CacheBatches, extract_pairs
from safer_rm.reward import reward_pairs
from safer_rm.sae import SAEConfig, train_sae
from safer_rm.splice import SAESplice, causal_test, reward_fidelity, spliced_margins

from helpers import eval_rm, pairs_from, separable_rows


def _setup(tiny_llama, tmp_path):
    _tok, model, renderer = eval_rm(tiny_llama)
    pairs = pairs_from(separable_rows(24))
    extract_pairs(model, renderer, pairs, 1, "all", tmp_path / "acts", dtype="float32", progress=False)
    cfg = SAEConfig(num_latents=128, k=8, batch_size=128, dead_after=1000)
    sae = train_sae(CacheBatches(ActivationCache(tmp_path / "acts"), 128), cfg, steps=150, lr=3e-3).sae
    return model, renderer, pairs, sae


def test_splice_with_error_kept_and_nothing_ablated_reproduces_rewards(tiny_llama, tmp_path):
    model, renderer, pairs, sae = _setup(tiny_llama, tmp_path)
    clean = reward_pairs(model, renderer, pairs, progress=False)
    kept = spliced_margins(model, renderer, pairs, sae, 1, keep_error=True)
    np.testing.assert_allclose(kept, clean.margin, atol=1e-4)
    # the hook is gone afterwards
    np.testing.assert_allclose(reward_pairs(model, renderer, pairs, progress=False).margin, clean.margin)
    # without the error term the reconstruction replaces the layer: close, but not identical
    fid = reward_fidelity(model, renderer, pairs, sae, 1, clean_margin=clean.margin)
    assert fid["mean_abs_margin_change"] > 0 and fid["clean_accuracy"] == float((clean.margin > 0).mean())


def test_ablating_latents_changes_rewards_only_through_them(tiny_llama, tmp_path):
    model, renderer, pairs, sae = _setup(tiny_llama, tmp_path)
    ids = torch.tensor([renderer.encode(pairs[0].prompt, pairs[0].chosen).input_ids])
    with torch.no_grad(), SAESplice(model, sae, 1, keep_error=True):
        base = model(input_ids=ids).logits
    with torch.no_grad():
        h = model(input_ids=ids, output_hidden_states=True).hidden_states[1][0]
    from safer_rm.activations import standardize

    x, _, _ = standardize(h)
    active = sae.encode(x).indices.unique().tolist()
    inactive = [i for i in range(sae.num_latents) if i not in active][:5]
    with torch.no_grad(), SAESplice(model, sae, 1, keep_error=True, ablate=inactive):
        same = model(input_ids=ids).logits
    with torch.no_grad(), SAESplice(model, sae, 1, keep_error=True, ablate=active):
        changed = model(input_ids=ids).logits
    torch.testing.assert_close(same, base)
    assert not torch.allclose(changed, base)
    res = causal_test(
        model, renderer, sae, 1, active[:4], {"safety": pairs[:8], "chat": pairs[8:16]}, draws=2
    )
    assert res["n_latents"] == 4 and res["draws"] == 2
    assert set(res) >= {
        "safety_margin_drop",
        "random_safety_margin_drop",
        "chat_margin_drop",
        "random_chat_margin_drop",
    }
