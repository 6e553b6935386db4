"""Write an SAE in SAE Lens's own layout, so that `sae_lens.SAE.load_from_disk(folder)` (SAE Lens 6) loads it
as its `TopKSAE` without a converter. In the folder:

    cfg.json                  architecture "topk", d_in, d_sae, k, dtype, the input normalisation, metadata
                              (hook name, our layer and standardisation, the export's notes)
    sae_weights.safetensors   W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in]
    README.md                 the same notes for people

From sparsify's tensors: W_enc = encoder.weight transposed, b_enc = encoder.bias, W_dec and b_dec as they are;
`apply_b_dec_to_input` true (sparsify subtracts b_dec before encoding) and `rescale_acts_by_decoder_norm`
false (SAE Lens would otherwise rank pre-activations times the decoder norms, which are 1 - eps here, not 1).
SAE Lens's sparsify converter (`load_from_disk(path, converter=sparsify_disk_loader)`, checked with SAE Lens
6.54) is no substitute: it transposes W_dec, which sparsify 1.3 already stores [latents, d], so loading fails
on the shape; past that it sets `apply_b_dec_to_input = not normalize_decoder` (false for our cfg.json: b_dec
would not be subtracted), loads in bfloat16, and names folder `layers.L` blocks.L.hook_resid_post, one block
above our layer L.

Activation, and why the export is exact. SAE Lens's TopK keeps the k largest pre-activations and then applies
a ReLU to them: z = ReLU(TopK_k((x - b_dec) W_enc + b_enc)), x_hat = z W_dec + b_dec. sparsify applies the
ReLU first: TopK_k(ReLU(.)). ReLU is monotone, so the two keep the same positive pre-activations, and where
fewer than k are positive the extra picks are 0 either way (sparsify reports them as active latents of value
0, SAE Lens leaves other latents at 0). The dense latent vectors are therefore equal, and so are the
reconstructions, up to the order of floating-point sums (ties between equal pre-activations at the k-th place
aside).

Inputs. safer-rm's SAEs are trained on vectors standardised one by one: (x - mean) / (std + 1e-6) over the
hidden dimensions, sample std (`SAEMeta.standardised`). SAE Lens has no such setting; the closest is
`normalize_activations: "layer_norm"`, the same map with eps 1e-5 instead of 1e-6, which it also undoes on the
output (x_hat * std + mean, as our splice does with std + 1e-6). For a standardised SAE it is written by
default, so SAE Lens fed the raw hidden states gives our latents up to a relative 9e-6 / std in the inputs (a
latent that close to the k-th place can swap); `normalize_activations="none"` writes the SAE for inputs the
caller standardises with our formula, and is exact.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import torch

from .. import __version__
from ..io import dumps, save_tensors, write_json, write_text
from .files import SAEMeta, replacing_folder
from .model import TopKSAE

LENS_CFG_FILE = "cfg.json"
LENS_WEIGHTS_FILE = "sae_weights.safetensors"
LENS_README = "README.md"
LENS_FORMAT = "6.0.0"
"""The SAE Lens version whose config layout is written (6.x: anything older is read as a pre-6 config)."""
STANDARDISATION = "per vector over the hidden dimensions: (x - mean) / (std + 1e-6), sample std (torch.std)"

Normalisation = Literal["layer_norm", "none"]


def lens_hook_name(layer: int | None) -> str | None:
    """TransformerLens's name of our layer L: the residual stream after block L (1-based), so after block
    L - 1 in TransformerLens's 0-based names; layer 0 is the embedding output, before block 0."""
    if layer is None:
        return None
    return "blocks.0.hook_resid_pre" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"


def lens_state_dict(sae: TopKSAE) -> dict[str, torch.Tensor]:
    """SAE Lens's tensors of `sae` (copies, in the SAE's dtype, on the CPU)."""
    return {
        "W_enc": sae.W_enc.detach().T.contiguous().cpu(),
        "b_enc": sae.b_lat.detach().clone().cpu(),
        "W_dec": sae.W_dec.detach().clone().cpu(),
        "b_dec": sae.b_pre.detach().clone().cpu(),
    }


def _notes(standardised: bool, normalize: Normalisation) -> str:
    if not standardised:
        return "Inputs are the raw hidden states; nothing to normalise."
    if normalize == "layer_norm":
        return (
            f"Trained on inputs standardised {STANDARDISATION}. normalize_activations='layer_norm' does "
            "this with eps 1e-5 instead of 1e-6 (and maps the reconstruction back), so feed the raw hidden "
            "states; latents agree up to a relative 9e-6 / std in the inputs."
        )
    return (
        f"Inputs must be standardised {STANDARDISATION} before encoding; SAE Lens does not do it "
        "(normalize_activations='none'). With that, encode and decode are exact."
    )


def lens_config(
    sae: TopKSAE,
    meta: SAEMeta | None = None,
    *,
    normalize_activations: Normalisation | None = None,
    model_name: str | None = None,
) -> dict:
    """SAE Lens's cfg.json for `sae` (see the module docstring for the choices)."""
    meta = meta or SAEMeta()
    normalize = normalize_activations or ("layer_norm" if meta.standardised else "none")
    return {
        "architecture": "topk",
        "d_in": sae.d_in,
        "d_sae": sae.num_latents,
        "k": sae.k,
        "dtype": str(sae.dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": normalize,
        "reshape_activations": "none",
        "rescale_acts_by_decoder_norm": False,
        "metadata": {
            "sae_lens_version": LENS_FORMAT,
            "sae_lens_training_version": None,
            "model_name": model_name,
            "hook_name": lens_hook_name(meta.layer),
            "hook_head_index": None,
            "exported_by": f"safer-rm {__version__}",
            "input_standardisation": STANDARDISATION if meta.standardised else None,
            "notes": _notes(meta.standardised, normalize),
            "safer_rm": asdict(meta),
        },
    }


def save_sae_lens(
    sae: TopKSAE,
    folder: str | os.PathLike,
    meta: SAEMeta | None = None,
    *,
    normalize_activations: Normalisation | None = None,
    model_name: str | None = None,
) -> Path:
    """Write `sae` to `folder` in SAE Lens's layout (replacing what was there) and return the folder.
    `normalize_activations` defaults to "layer_norm" for a standardised SAE, else "none"."""
    cfg = lens_config(sae, meta, normalize_activations=normalize_activations, model_name=model_name)
    target = Path(folder)
    with replacing_folder(target) as tmp:
        save_tensors(tmp / LENS_WEIGHTS_FILE, lens_state_dict(sae))
        write_json(tmp / LENS_CFG_FILE, cfg)
        write_text(tmp / LENS_README, _readme(cfg))
    return target


def _readme(cfg: dict) -> str:
    md = cfg["metadata"]
    return (
        f"# TopK SAE ({cfg['d_sae']} latents, k = {cfg['k']}, width {cfg['d_in']})\n\n"
        f"Exported by {md['exported_by']} in SAE Lens's layout: "
        f"`sae_lens.SAE.load_from_disk(folder)` gives a TopKSAE.\n\n"
        f"- hook: {md['hook_name'] or 'not recorded'}; model: {md['model_name'] or 'not recorded'}\n"
        f"- normalize_activations: {cfg['normalize_activations']}. {md['notes']}\n"
        "- SAE Lens applies its ReLU after the top-k and sparsify before it: the dense latents are "
        "the same.\n\n"
        f"```json\n{dumps(md['safer_rm']).strip()}\n```\n"
    )
