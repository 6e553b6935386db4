"""The margin columns of the per-pair scores (scores.csv): the margin as the attribution decomposes it."""

from __future__ import annotations


def margin_columns(parts: dict, selected: float) -> dict:
    """The margin, as the attribution decomposes it: its top latent contributions, the other latents, the base
    (not carried by any latent) and the non-linear rest (these four sum to `attributed_margin`), and the part
    of the selected features."""
    return {
        "attributed_margin": parts["margin"],
        "margin_top_latents": " ".join(f"{lat}:{val:+.4f}" for lat, val in parts["top"]),
        "margin_top_sum": parts["top_sum"],
        "margin_other_latents": parts["other_latents"],
        "margin_base": parts["base"],
        "margin_nonlinear": parts["nonlinear"],
        "margin_selected_features": float(selected),
    }
