"""The SAE Lens export (sae/lens.py), checked with plain torch: SAE Lens itself is not a dependency."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import load_file

from safer_rm.activations.extract import standardize
from safer_rm.sae import SAEConfig, SAEMeta, TopKSAE
from safer_rm.sae.lens import LENS_CFG_FILE, LENS_README, LENS_WEIGHTS_FILE, lens_hook_name, save_sae_lens

D, LATENTS, K = 32, 128, 8


def make_sae(bias: float = 0.0, seed: int = 0) -> TopKSAE:
    """A small SAE whose biases are not zero (b_pre must be subtracted, b_lat added)."""
    sae = TopKSAE.create(D, SAEConfig(num_latents=LATENTS, k=K, seed=seed))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.b_pre.copy_(torch.randn(D, generator=gen))
        sae.b_lat.copy_(0.3 * torch.randn(LATENTS, generator=gen) + bias)
    return sae


def lens_encode(t: dict[str, torch.Tensor], x: torch.Tensor, k: int) -> torch.Tensor:
    """SAE Lens's TopKSAE.encode: top k of (x - b_dec) W_enc + b_enc, then ReLU, scattered into zeros."""
    pre = (x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
    values, indices = torch.topk(pre, k, dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter_(-1, indices, values.relu())


def lens_decode(t: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    return z @ t["W_dec"] + t["b_dec"]


def lens_layer_norm(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SAE Lens's normalize_activations="layer_norm" on the way in (returns the mean and std to undo it)."""
    mu = x.mean(dim=-1, keepdim=True)
    std = (x - mu).std(dim=-1, keepdim=True)
    return (x - mu) / (std + eps), mu, std


def test_writes_sae_lens_tensors_and_config(tmp_path):
    sae = make_sae()
    meta = SAEMeta(layer=3, position_policy="response", standardised=True, training={"steps": 5})
    folder = save_sae_lens(sae, tmp_path / "lens", meta, model_name="tiny-bert")
    assert {p.name for p in folder.iterdir()} == {LENS_CFG_FILE, LENS_WEIGHTS_FILE, LENS_README}
    assert [p.name for p in tmp_path.iterdir()] == ["lens"]  # no temporary folder left

    t = load_file(folder / LENS_WEIGHTS_FILE)
    assert set(t) == {"W_enc", "b_enc", "W_dec", "b_dec"}
    assert t["W_enc"].shape == (D, LATENTS) and t["W_dec"].shape == (LATENTS, D)
    assert t["b_enc"].shape == (LATENTS,) and t["b_dec"].shape == (D,)
    assert torch.equal(t["W_enc"], sae.W_enc.detach().T) and torch.equal(t["W_dec"], sae.W_dec.detach())
    assert torch.equal(t["b_enc"], sae.b_lat.detach()) and torch.equal(t["b_dec"], sae.b_pre.detach())

    cfg = json.loads((folder / LENS_CFG_FILE).read_text())
    assert {k: cfg[k] for k in ("architecture", "d_in", "d_sae", "k", "dtype")} == {
        "architecture": "topk",
        "d_in": D,
        "d_sae": LATENTS,
        "k": K,
        "dtype": "float32",
    }
    assert cfg["apply_b_dec_to_input"] is True and cfg["rescale_acts_by_decoder_norm"] is False
    assert cfg["reshape_activations"] == "none"
    assert cfg["normalize_activations"] == "layer_norm"  # the default for a standardised SAE
    md = cfg["metadata"]
    assert int(md["sae_lens_version"].split(".")[0]) >= 6  # read as a 6.x config, not converted from 5.x
    assert md["hook_name"] == "blocks.2.hook_resid_post" and md["model_name"] == "tiny-bert"
    assert md["safer_rm"] == asdict(meta) and "1e-6" in md["input_standardisation"]
    assert "layer_norm" in (folder / LENS_README).read_text()

    plain = save_sae_lens(sae, tmp_path / "lens", SAEMeta(layer=0, standardised=False))  # replaces the folder
    cfg = json.loads((plain / LENS_CFG_FILE).read_text())
    assert (
        cfg["normalize_activations"] == "none" and cfg["metadata"]["hook_name"] == "blocks.0.hook_resid_pre"
    )
    assert [lens_hook_name(n) for n in (None, 0, 1, 12)] == [
        None,
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_resid_post",
        "blocks.11.hook_resid_post",
    ]
    bf16 = TopKSAE.create(D, SAEConfig(num_latents=LATENTS, k=K, dtype="bfloat16"))
    folder = save_sae_lens(bf16, tmp_path / "bf16")
    assert json.loads((folder / LENS_CFG_FILE).read_text())["dtype"] == "bfloat16"
    assert load_file(folder / LENS_WEIGHTS_FILE)["W_enc"].dtype == torch.bfloat16


@pytest.mark.parametrize("bias", [0.0, -2.5], ids=["k-positive", "fewer-than-k-positive"])
def test_sae_lens_formula_reproduces_our_encode_and_decode(tmp_path, bias):
    """SAE Lens: ReLU after the top-k; sparsify: before it. The dense latents and reconstructions agree, also
    when fewer than k pre-activations are positive (sparsify then reports active latents of value 0)."""
    sae = make_sae(bias)
    folder = save_sae_lens(sae, tmp_path / "lens", SAEMeta(layer=1), normalize_activations="none")
    t = load_file(folder / LENS_WEIGHTS_FILE)
    x = standardize(3 * torch.randn(400, D, generator=torch.Generator().manual_seed(1)) + 1)[0]
    with torch.no_grad():
        ours, ours_hat = sae.dense(x), sae(x)
    z = lens_encode(t, x, K)
    few = (ours != 0).sum(-1) < K
    assert few.any() if bias < 0 else not few.all()
    assert torch.equal(z != 0, ours != 0)
    torch.testing.assert_close(z, ours, rtol=0, atol=1e-5)
    torch.testing.assert_close(lens_decode(t, z), ours_hat, rtol=0, atol=1e-5)


def test_layer_norm_setting_matches_our_standardisation_up_to_eps(tmp_path):
    """With normalize_activations="layer_norm" SAE Lens takes raw hidden states: (x - mean) / (std + 1e-5),
    sample std, against our 1e-6; and maps the reconstruction back with std and mean."""
    sae = make_sae()
    folder = save_sae_lens(sae, tmp_path / "lens", SAEMeta(layer=1, standardised=True))
    assert json.loads((folder / LENS_CFG_FILE).read_text())["normalize_activations"] == "layer_norm"
    t = load_file(folder / LENS_WEIGHTS_FILE)
    raw = 2 * torch.randn(400, D, generator=torch.Generator().manual_seed(2)) - 0.5
    x, mean, std = standardize(raw)
    with torch.no_grad():
        ours, ours_hat = sae.dense(x), sae(x)
    ln, mu, sd = lens_layer_norm(raw)
    z = lens_encode(t, ln, K)
    assert torch.equal(z != 0, ours != 0)
    torch.testing.assert_close(z, ours, rtol=0, atol=1e-4)
    back = lens_decode(t, z) * sd + mu
    torch.testing.assert_close(back, ours_hat * (std + 1e-6)[:, None] + mean[:, None], rtol=1e-4, atol=1e-4)
