"""Reward attribution of every SAE latent: how much of a response's reward runs through it.

With the SAE spliced in at its layer and the reconstruction error kept (so the reward is unchanged), the hidden
state at position p is  h(p) = sum_i z_i(p) d_i s(p) + b s(p) + mu(p) + e(p)  (d_i: latent i's decoder row, s, mu:
the vector's standardisation, e: the error term). The first-order effect of latent i on the reward r is

    A_i(y) = sum over the positions p of the text of y of  z_i(p) * (d_i s(p) . dr/dh(p))

(one backward pass per batch, taken with respect to the top-k activations themselves). The positions are every
token of the rendered text (prompt and response): the splice acts on all of them, and the prompt's states carry
the response's influence (in an encoder they differ between the two responses of a pair). Zeroing all latents
with the error kept gives the text's base reward r0; then exactly

    r(y) = r0(y) + sum_i A_i(y) + eps(y),

where eps (the `nonlinear` term) is what first order misses; for a reward that is linear in the spliced layer
(a linear head right after it) eps = 0 and zeroing any set S changes r by exactly sum_{i in S} A_i. A pair's
margin decomposes the same way, with the margin contribution  M_i = A_i(chosen) - A_i(rejected). The result of
an attribution pass is an `Attribution` (`safer_rm.attribution_record`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .attribution_record import Attribution
from .data.records import PreferencePair
from .io import quiet
from .models.batching import autocast, length_batches, pad_batch
from .models.head_position import first_position_only
from .models.layers import Resume, transformer_blocks
from .reward.scoring import Scorer
from .sae import TopKSAE
from .splice import EncodingMemo, SAESplice, sae_frame, spliced_margins


class _Capture:
    """Forward hook on the SAE layer: the splice with the error term kept, its top-k activations made leaves
    of the autograd graph so dr/dz comes out of one backward pass."""

    def __init__(self, sae: TopKSAE, standardized: bool, memo: EncodingMemo):
        self.sae, self.standardized, self.memo = sae, standardized, memo
        self.acts: torch.Tensor | None = None
        self.indices: torch.Tensor | None = None

    def __call__(self, _module, _args, output):
        h = output[0] if isinstance(output, tuple) else output
        shape, dtype = h.shape, h.dtype
        flat = h.detach().reshape(-1, shape[-1]).float()
        x, scale, shift = sae_frame(flat, self.standardized)
        enc = self.memo.encode(self.sae, x.to(self.sae.device))  # the base pass reuses it
        acts = enc.acts.detach().float().requires_grad_(True)
        recon = self.sae.decode(acts.to(self.sae.dtype), enc.indices).float().to(flat.device)
        recon = recon * scale + shift
        out = (recon + (flat - recon).detach()).reshape(shape).to(dtype)
        self.acts, self.indices = acts, enc.indices
        return (out, *output[1:]) if isinstance(output, tuple) else out


@contextlib.contextmanager
def _frozen(model):
    """No parameter gradients (only the activations' are wanted), restored afterwards."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


def attribute_texts(
    scorer: Scorer,
    input_ids: Sequence[Sequence[int]],
    sae: TopKSAE,
    layer: int,
    standardized: bool = True,
    desc: str = "reward attribution",
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """(reward [n], base reward [n], per text (latent ids, A_i) of its active latents), texts in input order."""
    if layer < 1:
        raise ValueError("the SAE can be spliced after a block (layer >= 1)")
    model, prefix, bf16, progress = scorer.model, scorer.prefix, scorer.bf16, scorer.progress
    device = next(model.parameters()).device
    n, L = len(input_ids), sae.num_latents
    reward, base = np.zeros(n, dtype=np.float64), np.zeros(n, dtype=np.float64)
    sparse: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int64), np.zeros(0))] * n
    was_training = model.training
    model.eval()
    if prefix is not None:
        prefix.fill(model, [list(s) for s in input_ids], scorer.pad_id, scorer.batch_size, progress)
    memo = EncodingMemo(max_vectors=50_000)  # a batch's codes, from its gradient pass to its base pass
    capture = _Capture(sae, standardized, memo)
    batches = length_batches([len(s) for s in input_ids], scorer.batch_size)
    blocks = transformer_blocks(model)
    block = blocks[layer - 1]
    resume_ctx = Resume(model, prefix.layer) if prefix is not None else contextlib.nullcontext()
    # only what the head reads, unless the SAE sits on the last block (its every position is captured)
    shortcut = first_position_only(model, enabled=layer < len(blocks))
    with _frozen(model), resume_ctx as resume, shortcut:
        for idx in tqdm(batches, desc=desc, unit="batch", disable=quiet(progress), leave=False):
            seqs = [list(input_ids[i]) for i in idx]
            ids, mask = pad_batch(seqs, scorer.pad_id)

            states = prefix.batch(seqs, ids.shape[1]).to(device) if resume else None

            def feed(states=states):
                return resume.feed(states) if states is not None else contextlib.nullcontext()

            handle = block.register_forward_hook(capture)
            try:
                with torch.enable_grad(), autocast(device, bf16), feed():
                    r = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0].float()
                (grad,) = torch.autograd.grad(r.sum(), capture.acts)
            finally:
                handle.remove()
            contrib = (capture.acts.detach() * grad).double()
            contrib = contrib * mask.reshape(-1, 1).to(contrib.device, contrib.dtype)  # pads add nothing
            rows = torch.arange(len(idx), device=contrib.device).repeat_interleave(ids.shape[1])
            flat = (rows.unsqueeze(1) * L + capture.indices.long().to(contrib.device)).reshape(-1)
            dense = torch.zeros(len(idx) * L, dtype=torch.float64, device=contrib.device)
            dense.index_add_(0, flat, contrib.reshape(-1))
            dense = dense.view(len(idx), L).cpu().numpy()
            with torch.no_grad(), autocast(device, bf16), feed():
                with SAESplice(
                    model, sae, layer, keep_error=True, ablate=range(L), standardized=standardized, memo=memo
                ):
                    r0 = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0]
            reward[idx] = r.detach().cpu().numpy()
            base[idx] = r0.float().cpu().numpy()
            for row, i in enumerate(idx):
                nz = np.flatnonzero(dense[row])
                sparse[i] = (nz, dense[row, nz])
    model.train(was_training)
    return reward, base, sparse


def attribute_pairs(
    scorer: Scorer, pairs: Sequence[PreferencePair], sae: TopKSAE, layer: int, standardized: bool = True
) -> Attribution:
    """Attribution of both responses of every pair (one streamed pass, a backward per batch of
    `scorer.batch_size` texts)."""
    chosen, rejected = scorer.renderer.encode_pairs(pairs)
    ids = [e.input_ids for e in chosen + rejected]
    reward, base, sparse = attribute_texts(scorer, ids, sae, layer, standardized)
    n, L = len(pairs), sae.num_latents
    totals = np.array([v.sum() for _, v in sparse])
    sums = np.zeros((2, L), dtype=np.float64)
    indptr, lat_parts, val_parts = [0], [], []
    scratch = np.zeros(L, dtype=np.float64)
    for i in range(n):
        (ic, vc), (ir, vr) = sparse[i], sparse[n + i]
        sums[0, ic] += vc
        sums[1, ir] += vr
        scratch[ic] += vc
        scratch[ir] -= vr
        union = np.union1d(ic, ir)
        lat_parts.append(union)
        val_parts.append(scratch[union].copy())
        scratch[union] = 0.0
        indptr.append(indptr[-1] + len(union))
    return Attribution(
        [p.id for p in pairs],
        [p.kind for p in pairs],
        L,
        np.stack([reward[:n], reward[n:]], axis=1),
        np.stack([base[:n], base[n:]], axis=1),
        np.stack([totals[:n], totals[n:]], axis=1),
        np.asarray(indptr, dtype=np.int64),
        np.concatenate(lat_parts).astype(np.int64) if lat_parts else np.zeros(0, np.int64),
        np.concatenate(val_parts) if val_parts else np.zeros(0),
        sums[0],
        sums[1],
    )


def check_against_ablation(
    scorer: Scorer,
    pairs: Sequence[PreferencePair],
    attribution: Attribution,
    sae: TopKSAE,
    layer: int,
    latents: Sequence[int],
    **kw,
) -> dict:
    """Exact effect of zeroing each latent alone (error term kept) on the margins of `pairs` (a sample of the
    attributed pairs, matched by id) against its attributed margin contribution M_i: their correlation over
    (pair, latent) points, the slope of exact on attributed, and the mean absolute gap."""
    where = {pid: i for i, pid in enumerate(attribution.pair_ids)}
    rows = [where[p.id] for p in pairs]
    attributed = attribution.margin_matrix(latents)[rows]
    # the base margins again, not attribution.margin: batched as the ablated passes below, so each difference
    # is paired (the same padding and batch, in bf16 too) and carries no batching noise
    base = spliced_margins(scorer, pairs, sae, layer, keep_error=True, desc="attribution check", **kw)
    exact = np.zeros_like(attributed)
    for j, latent in enumerate(latents):
        ablated = spliced_margins(
            scorer,
            pairs,
            sae,
            layer,
            keep_error=True,
            ablate=[latent],
            desc=f"attribution check {j + 1}/{len(latents)}",
            **kw,
        )
        exact[:, j] = base - ablated
    a, e = attributed.ravel(), exact.ravel()
    ok = np.std(a) > 0 and np.std(e) > 0
    return {
        "pairs": len(pairs),
        "latents": [int(i) for i in latents],
        "points": int(a.size),
        "pearson": float(np.corrcoef(a, e)[0, 1]) if ok else None,
        "slope": float((a @ e) / (a @ a)) if a @ a > 0 else None,
        "mean_abs_gap": float(np.abs(a - e).mean()) if a.size else None,
        "mean_abs_exact": float(np.abs(e).mean()) if e.size else None,
    }


def decompose_margin(attribution: Attribution, pair: int, top: int = 3) -> dict:
    """A pair's margin as its `top` latent contributions (by |M_i|), the other latents, the base (everything
    not carried by a latent: decoder bias, error term, head bias) and the non-linear rest; they sum to the
    margin."""
    latents, values = attribution.row(pair)
    order = np.lexsort((latents, -np.abs(values)))[:top]
    top_sum = float(values[order].sum())
    latent_sum = float(values.sum())
    base = float(attribution.base[pair, 0] - attribution.base[pair, 1])
    nonlinear = float(attribution.nonlinear[pair, 0] - attribution.nonlinear[pair, 1])
    return {
        "top": [(int(latents[o]), float(values[o])) for o in order],
        "top_sum": top_sum,
        "other_latents": latent_sum - top_sum,
        "base": base,
        "nonlinear": nonlinear,
        "margin": float(attribution.margin[pair]),
    }
