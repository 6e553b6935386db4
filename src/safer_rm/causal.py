"""The causal test of a latent selection: with the SAE spliced into the reward model and the reconstruction
error kept (`safer_rm.splice`), the selected latents are scaled (zeroed, doubled, flipped) and the margins
compared with the unedited splice and with random latent sets, per evaluation group: RewardBench's sections
and the held-out pairs by kind.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from functools import partial

import numpy as np

from .data.records import PreferencePair
from .reward.evaluate import SECTION_ORDER, SECTIONS, section_scores, subset_accuracy
from .reward.rewardbench2 import NAME as RB2
from .reward.rewardbench2 import rows_from_margins, units
from .reward.scoring import Scorer
from .sae import TopKSAE
from .splice import EncodingMemo, spliced_margins
from .stats import mean_interval, paired_difference

SAFETY_GROUPS = ("Safety", "heldout safety")
CHAT_GROUPS = ("Chat", "Chat Hard", "heldout chat")
"""The groups the specificity ratio compares: |margin change| on safety pairs over that on chat pairs."""
LEVEL = 0.95


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


def best_of_n_groups(
    pairs: Sequence[PreferencePair], max_pairs: int | None = None, seed: int = 0
) -> dict[str, list[PreferencePair]]:
    """RewardBench 2's subsets but Ties (its score pairs prompts across rows) as groups `rewardbench2 <subset>`
    of whole best-of-N rows (`data.best_of_n.as_pairs`), each a seeded sample of rows with at most `max_pairs`
    pairs in all (one row at least)."""
    rows: dict[str, dict[str, list[PreferencePair]]] = defaultdict(dict)
    for p in pairs:
        if p.meta["subset"].lower() != "ties":
            rows[p.meta["subset"]].setdefault(p.meta["row"], []).append(p)
    out = {}
    for subset, by_row in rows.items():
        keys = list(by_row)
        rng = np.random.default_rng([seed, zlib.crc32(subset.encode())])
        picked, n = [], 0
        for i in rng.permutation(len(keys)) if max_pairs is not None else range(len(keys)):
            if picked and max_pairs is not None and n + len(by_row[keys[i]]) > max_pairs:
                break
            picked.append(int(i))
            n += len(by_row[keys[i]])
        out[f"{RB2} {subset}"] = [p for i in sorted(picked) for p in by_row[keys[i]]]
    return out


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
    scorer: Scorer,
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
    score = partial(_score_groups, scorer, sae, layer, groups, kw)
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
    scorer: Scorer, sae, layer, groups: dict[str, list], kw: dict, ablate, scale: float, desc: str
) -> dict[str, np.ndarray]:
    """Margins per group of one condition, all groups scored in one pass (full batches)."""
    everything = [p for pairs in groups.values() for p in pairs]
    if not everything:
        return {}
    margin = spliced_margins(
        scorer, everything, sae, layer, keep_error=True, ablate=ablate, scale=scale, desc=desc, **kw
    )
    ends = np.cumsum([len(pairs) for pairs in groups.values()])[:-1]
    return dict(zip(groups, np.split(margin, ends)))


def _outcome(name: str, pairs: list, margin: np.ndarray) -> np.ndarray:
    """Per pair 1.0 when its margin is > 0; a RewardBench 2 group (`rewardbench2 <subset>`, whole best-of-N
    rows as pairs) per row: the row's official result, so its accuracy is the subset's score."""
    if name.startswith(RB2 + " "):
        return units(rows_from_margins(pairs, margin))[0].values
    return (margin > 0).astype(float)


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
        "base": {
            "accuracy": _accuracy(name, pairs, _outcome(name, pairs, base), boot),
            "margin": float(base.mean()),
        },
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
    before, after = _outcome(name, pairs, base), _outcome(name, pairs, edited)
    rand_outcomes = [_outcome(name, pairs, r) for r in rand]
    versus = None
    if rand:
        rand_mean = np.mean(rand_outcomes, axis=0)
        versus = paired_difference(after, rand_mean, n_boot, LEVEL, seed).to_json()
    return {
        "accuracy": _accuracy(name, pairs, after, boot),
        "accuracy_diff": paired_difference(after, before, n_boot, LEVEL, seed).to_json(),
        "margin_drop": mean_interval(base - edited, n_boot, LEVEL, seed).to_json(),
        "mean_abs_margin_change": float(np.abs(edited - base).mean()),
        "random": _random_summary(base, rand, rand_outcomes),
        "versus_random": versus,
    }


def _random_summary(base: np.ndarray, rand: list[np.ndarray], outcomes: list[np.ndarray]) -> dict:
    if not rand:
        return {"accuracy": None, "margin_drop": None, "margin_drop_sd": None, "mean_abs_margin_change": None}
    drops = [float((base - r).mean()) for r in rand]
    return {
        "accuracy": float(np.mean([o.mean() for o in outcomes])),
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
