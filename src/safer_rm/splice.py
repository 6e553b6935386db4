"""An SAE spliced into a reward model at its layer: the hidden state is standardised per vector, encoded,
decoded and de-standardised in place of the original. Two uses:

- reward fidelity (the SAE's reconstruction replaces the hidden state): how much accuracy and margin the
  reconstruction costs;
- the causal test (`keep_error=True`): the reconstruction error is added back, so with nothing ablated the
  output is unchanged, and scaling latents (zeroing, doubling, flipping them) changes the reward only through
  those latents. Its evaluation groups are RewardBench's sections and the held-out pairs by kind.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from functools import partial

import numpy as np
import torch

from .activations.extract import standardize
from .data.records import PreferencePair
from .models.layers import transformer_blocks
from .reward.evaluate import SECTION_ORDER, SECTIONS, section_scores, subset_accuracy
from .reward.scoring import reward_pairs
from .sae import Encoding, TopKSAE
from .stats import mean_interval, paired_difference

SAFETY_GROUPS = ("Safety", "heldout safety")
CHAT_GROUPS = ("Chat", "Chat Hard", "heldout chat")
"""The groups the specificity ratio compares: |margin change| on safety pairs over that on chat pairs."""
LEVEL = 0.95


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
    model,
    renderer,
    pairs,
    sae: TopKSAE,
    layer: int,
    *,
    keep_error: bool = False,
    ablate: Iterable[int] = (),
    scale: float = 0.0,
    batch_size: int = 32,
    bf16: bool = False,
    prefix=None,
    desc: str = "spliced scoring",
    standardized: bool = True,
    memo: EncodingMemo | None = None,
) -> np.ndarray:
    """Reward margins of `pairs` with the SAE spliced in at `layer` (the `ablate` latents scaled by `scale`).
    `standardized`: the SAE was trained on per-vector standardised states (`activations.standardize`); `memo`:
    encodings shared with other passes over the same pairs."""
    splice = SAESplice(
        model,
        sae,
        layer,
        keep_error=keep_error,
        ablate=ablate,
        scale=scale,
        standardized=standardized,
        memo=memo,
    )
    with splice:
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


def evaluation_groups(
    rewardbench: Sequence[PreferencePair],
    heldout: Sequence[PreferencePair],
    max_pairs: int | None = None,
    seed: int = 0,
) -> dict[str, list[PreferencePair]]:
    """The causal test's groups: every RewardBench section with pairs (`Chat`, `Chat Hard`, `Safety`,
    `Reasoning`, by subset), then `heldout safety` and `heldout chat` (the held-out pairs by kind), each
    sampled to at most `max_pairs` pairs (see `sample_group`)."""
    groups = {s: [p for p in rewardbench if p.meta.get("subset") in SECTIONS[s]] for s in SECTION_ORDER}
    for kind in ("safety", "chat"):
        groups[f"heldout {kind}"] = [p for p in heldout if p.kind == kind]
    return {name: sample_group(name, pairs, max_pairs, seed) for name, pairs in groups.items() if pairs}


def sample_group(
    name: str, pairs: Sequence[PreferencePair], max_pairs: int | None, seed: int = 0
) -> list[PreferencePair]:
    """At most `max_pairs` of `pairs`, in their order: a sample seeded by `seed` and the group's name,
    stratified (a RewardBench section by subset, other groups by source) so that every stratum keeps its
    share of the group (largest remainders), and at least one pair while `max_pairs` allows."""
    if max_pairs is None or len(pairs) <= max_pairs:
        return list(pairs)
    strata: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        strata[_stratum(name, p)].append(i)
    keys = sorted(strata)
    counts = _allocate([len(strata[k]) for k in keys], max_pairs)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    chosen = [int(i) for k, c in zip(keys, counts) for i in rng.choice(strata[k], c, replace=False)]
    return [pairs[i] for i in sorted(chosen)]


def _stratum(name: str, pair: PreferencePair) -> str:
    return pair.meta.get("subset", "") if name in SECTIONS else pair.source


def _allocate(sizes: Sequence[int], total: int) -> list[int]:
    """Shares of `total` (< sum of `sizes`) proportional to `sizes` by largest remainders, each at most its
    size and at least 1 when `total` allows one per stratum."""
    size = np.asarray(sizes)
    quota = size * total / size.sum()
    least = 1 if total >= len(size) else 0
    counts = np.clip(np.floor(quota).astype(int), least, size)
    while counts.sum() < total:
        counts[np.argmax(np.where(counts < size, quota - counts, -np.inf))] += 1
    while counts.sum() > total:
        counts[np.argmin(np.where(counts > least, quota - counts, np.inf))] -= 1
    return counts.tolist()


def causal_test(
    model,
    renderer,
    sae: TopKSAE,
    layer: int,
    selected: Iterable[int],
    groups: dict[str, list],
    draws: int = 5,
    seed: int = 0,
    *,
    scales: Sequence[float] = (0.0,),
    n_boot: int = 2000,
    **kw,
) -> dict:
    """Scale the selected latents (reconstruction error kept) by each factor in `scales` and compare, per group
    of evaluation pairs, with the spliced RM with nothing edited (the base, equal to the clean RM) and with
    `draws` sets of as many random latents (drawn once among the unselected ones, scaled alike). Every
    condition is one scoring pass over all groups together. A margin drop is base minus edited margin
    (positive: the edit hurt the chosen side). Intervals are 95 % percentile bootstraps over pairs
    (`n_boot` replicates, seeded by `seed`); accuracies count a pair right when its margin is > 0.

    Returns (floats of intervals rounded to 6 decimals, as `safer_rm.stats` writes them):

    - `n_latents`, `draws`, `n_boot`, `level`, `selected` and `random_sets` (latent ids);
    - `groups`: {name: {`n`, `subsets` or `sources` (pairs per stratum), `base`: {`accuracy`: interval,
      `margin`: mean margin}}};
    - `scales`: one entry per factor, in order: {`scale`, `specificity`, `random_specificity`, `groups`:
      {name: condition}}, a condition being {`accuracy`: interval of the edited RM, `accuracy_diff`: paired
      difference edited minus base, `margin_drop`: interval, `mean_abs_margin_change`, `random`: {`accuracy`,
      `margin_drop` (mean over draws of each draw's mean drop), `margin_drop_sd` (sd over draws),
      `mean_abs_margin_change`, `draw_margin_drops`}, `versus_random`: paired difference of the selection's
      per-pair outcome minus the mean outcome over the draws (null without draws)}.

    An interval is {`value`, `low`, `high`, `n`, `seeds`}, a paired difference {`diff`, `low`, `high`, `p`,
    `test`, `n`, `seeds`, `seed_sd`, `excludes_zero`} (see `safer_rm.stats`). The specificity ratio is the
    mean |margin change| over the pairs of the safety groups (`SAFETY_GROUPS`) divided by that over the chat
    groups (`CHAT_GROUPS`), null when a side is absent or its mean is 0; `random_specificity` pools the draws.

    Accuracy of a RewardBench section: its `value` is the section score the evaluation computes
    (`section_scores` of `subset_accuracy`: subsets weighted by row count) on the sampled pairs, which is
    exactly the per-pair accuracy within the sample that the interval resamples; since the sample keeps each
    subset's share (`sample_group`), it estimates the full section's score up to rounding of the shares."""
    selected = sorted(set(int(i) for i in selected))
    random_sets = _random_sets(sae.num_latents, selected, draws, seed)
    groups = {name: list(pairs) for name, pairs in groups.items() if len(pairs)}
    kw = {"memo": EncodingMemo(), **kw}  # every condition splices into the same batches: encode them once
    score = partial(_score_groups, model, renderer, sae, layer, groups, kw)
    base = score((), 0.0, "causal: spliced")
    boot = {"n_boot": n_boot, "seed": seed}
    conditions = []
    for s in scales:
        edited = score(selected, s, f"causal: selected x{s:g}")
        rand = [
            score(r, s, f"causal: random {i + 1}/{len(random_sets)} x{s:g}")
            for i, r in enumerate(random_sets)
        ]
        conditions.append(_scale_result(float(s), groups, base, edited, rand, boot))
    info = {name: _group_info(name, pairs, base[name], boot) for name, pairs in groups.items()}
    return {
        "n_latents": len(selected),
        "draws": draws,
        "n_boot": n_boot,
        "level": LEVEL,
        "selected": selected,
        "random_sets": random_sets,
        "groups": info,
        "scales": conditions,
    }


def _random_sets(num_latents: int, selected: list[int], draws: int, seed: int) -> list[list[int]]:
    """`draws` sets of as many latents as `selected` (at most all others), none of them selected."""
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(np.arange(num_latents), selected)
    size = min(len(selected), len(pool))
    return [rng.choice(pool, size=size, replace=False).tolist() for _ in range(draws)]


def _score_groups(
    model, renderer, sae, layer, groups: dict[str, list], kw: dict, ablate, scale: float, desc: str
) -> dict[str, np.ndarray]:
    """Margins per group of one condition, all groups scored in one pass (full batches)."""
    everything = [p for pairs in groups.values() for p in pairs]
    if not everything:
        return {}
    margin = spliced_margins(
        model, renderer, everything, sae, layer, keep_error=True, ablate=ablate, scale=scale, desc=desc, **kw
    )
    ends = np.cumsum([len(pairs) for pairs in groups.values()])[:-1]
    return dict(zip(groups, np.split(margin, ends)))


def _accuracy(name: str, pairs: list, correct: np.ndarray, boot: dict) -> dict:
    """Accuracy with its interval over pairs; a RewardBench section's value computed as the evaluation does."""
    out = mean_interval(correct, boot["n_boot"], LEVEL, boot["seed"]).to_json()
    subsets = [p.meta.get("subset", "") for p in pairs]
    if name in SECTIONS and set(subsets) <= set(SECTIONS[name]):
        out["value"] = round(section_scores(subset_accuracy(subsets, correct))[name], 6)
    return out


def _group_info(name: str, pairs: list, base: np.ndarray, boot: dict) -> dict:
    strata = Counter(_stratum(name, p) for p in pairs)
    return {
        "n": len(pairs),
        "subsets" if name in SECTIONS else "sources": dict(sorted(strata.items())),
        "base": {"accuracy": _accuracy(name, pairs, base > 0, boot), "margin": float(base.mean())},
    }


def _scale_result(
    scale: float,
    groups: dict[str, list],
    base: dict[str, np.ndarray],
    edited: dict[str, np.ndarray],
    rand: list[dict[str, np.ndarray]],
    boot: dict,
) -> dict:
    return {
        "scale": scale,
        "specificity": specificity(base, [edited]),
        "random_specificity": specificity(base, rand),
        "groups": {
            name: _condition(name, pairs, base[name], edited[name], [r[name] for r in rand], boot)
            for name, pairs in groups.items()
        },
    }


def _condition(
    name: str, pairs: list, base: np.ndarray, edited: np.ndarray, rand: list[np.ndarray], boot: dict
) -> dict:
    """One group under one edit: the edited RM against the base and against the random sets."""
    n_boot, seed = boot["n_boot"], boot["seed"]
    before, after = (base > 0).astype(float), (edited > 0).astype(float)
    versus = None
    if rand:
        rand_mean = np.mean([r > 0 for r in rand], axis=0)
        versus = paired_difference(after, rand_mean, n_boot, LEVEL, seed).to_json()
    return {
        "accuracy": _accuracy(name, pairs, after, boot),
        "accuracy_diff": paired_difference(after, before, n_boot, LEVEL, seed).to_json(),
        "margin_drop": mean_interval(base - edited, n_boot, LEVEL, seed).to_json(),
        "mean_abs_margin_change": float(np.abs(edited - base).mean()),
        "random": _random_summary(base, rand),
        "versus_random": versus,
    }


def _random_summary(base: np.ndarray, rand: list[np.ndarray]) -> dict:
    if not rand:
        return {"accuracy": None, "margin_drop": None, "margin_drop_sd": None, "mean_abs_margin_change": None}
    drops = [float((base - r).mean()) for r in rand]
    return {
        "accuracy": float(np.mean([(r > 0).mean() for r in rand])),
        "margin_drop": float(np.mean(drops)),
        "margin_drop_sd": float(np.std(drops)),
        "mean_abs_margin_change": float(np.mean([np.abs(r - base).mean() for r in rand])),
        "draw_margin_drops": drops,
    }


def specificity(base: dict[str, np.ndarray], edited: list[dict[str, np.ndarray]]) -> float | None:
    """Mean |margin change| over the pairs of the safety groups over that of the chat groups, pooled over the
    edits in `edited` (one per random draw, or the selection alone); None when a side is missing or its
    mean is 0."""
    sides = []
    for names in (SAFETY_GROUPS, CHAT_GROUPS):
        changes = [np.abs(e[g] - base[g]) for e in edited for g in names if g in base]
        sides.append(float(np.concatenate(changes).mean()) if changes else None)
    safety, chat = sides
    return None if safety is None or not chat else safety / chat
