"""The result of a reward attribution pass (`safer_rm.attribution`): per pair the rewards, the base reward and
the sum of the latents' attributions A_i of both responses, and the sparse margin contributions
M_i = A_i(chosen) - A_i(rejected) of the latents active in the pair; per latent the sums over pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Attribution:
    """Per-pair and per-latent reward attribution of one reward model's SAE latents on a set of pairs."""

    pair_ids: list[str]
    kinds: list[str]
    num_latents: int
    reward: np.ndarray
    """[n, 2] reward of chosen and rejected with the splice in place (equals the RM's own reward)."""
    base: np.ndarray
    """[n, 2] reward with every latent zeroed, error term kept."""
    total: np.ndarray
    """[n, 2] sum over latents of A_i."""
    indptr: np.ndarray
    """CSR over pairs of the margin contributions M_i (only latents active in the pair)."""
    latents: np.ndarray
    values: np.ndarray
    chosen_sum: np.ndarray
    """[L] sum over pairs of A_i(chosen)."""
    rejected_sum: np.ndarray
    """[L] sum over pairs of A_i(rejected)."""

    @property
    def margin(self) -> np.ndarray:
        return self.reward[:, 0] - self.reward[:, 1]

    @property
    def nonlinear(self) -> np.ndarray:
        """[n, 2] eps = r - r0 - sum_i A_i: what the first-order attribution misses."""
        return self.reward - self.base - self.total

    def row(self, pair: int) -> tuple[np.ndarray, np.ndarray]:
        """(latents, margin contributions) of one pair."""
        a, b = self.indptr[pair], self.indptr[pair + 1]
        return self.latents[a:b], self.values[a:b]

    def margin_matrix(self, latents: Sequence[int]) -> np.ndarray:
        """[n, len(latents)] margin contributions of the given latents (0 where inactive)."""
        col = np.full(self.num_latents, -1, dtype=np.int64)
        col[np.asarray(list(latents), dtype=np.int64)] = np.arange(len(latents))
        out = np.zeros((len(self.pair_ids), len(latents)), dtype=np.float64)
        rows = np.repeat(np.arange(len(self.pair_ids)), np.diff(self.indptr))
        j = col[self.latents]
        keep = j >= 0
        out[rows[keep], j[keep]] = self.values[keep]
        return out

    def margin_effect(self, kind: str | None = None) -> np.ndarray:
        """[L] mean margin contribution of every latent over the pairs (of one kind, if given)."""
        return self._margin_effects([kind])[0]

    def _margin_effects(self, kinds: Sequence[str | None]) -> list[np.ndarray]:
        """`margin_effect` for each of `kinds`, the entries' pair rows worked out once."""
        rows = np.repeat(np.arange(len(self.pair_ids)), np.diff(self.indptr))
        pair_kinds = np.asarray(self.kinds, dtype=object)
        out = []
        for kind in kinds:
            latents, values, n = self.latents, self.values, len(self.pair_ids)
            if kind is not None:
                is_kind = pair_kinds == kind
                keep = is_kind[rows]
                latents, values, n = latents[keep], values[keep], int(is_kind.sum())
            total = np.bincount(latents, weights=values, minlength=self.num_latents)
            out.append(total.astype(np.float64) / max(n, 1))
        return out

    def latent_table(self) -> dict[str, np.ndarray]:
        """Per latent: mean reward effect on chosen and on rejected responses, mean margin effect on all,
        safety and chat pairs."""
        n = max(len(self.pair_ids), 1)
        every, safety, chat = self._margin_effects([None, "safety", "chat"])
        return {
            "effect_chosen": self.chosen_sum / n,
            "effect_rejected": self.rejected_sum / n,
            "margin_effect": every,
            "margin_effect_safety": safety,
            "margin_effect_chat": chat,
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything as tensors (for safetensors), the per-latent table included."""
        out = {
            "reward": self.reward,
            "base": self.base,
            "total": self.total,
            "indptr": self.indptr,
            "latents": self.latents,
            "values": self.values,
            "chosen_sum": self.chosen_sum,
            "rejected_sum": self.rejected_sum,
            **self.latent_table(),
        }
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor], pair_ids: list[str], kinds: list[str]) -> Attribution:
        return cls(
            pair_ids,
            kinds,
            int(t["chosen_sum"].shape[0]),
            *(
                t[k].numpy()
                for k in (
                    "reward",
                    "base",
                    "total",
                    "indptr",
                    "latents",
                    "values",
                    "chosen_sum",
                    "rejected_sum",
                )
            ),
        )


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
