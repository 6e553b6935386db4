"""The demo's reward-model cuts, measured side by side in one run (interleaved rounds, median): the same pairs,
batch size, learning rate and seed through `train_reward_model` and `reward_pairs` on MiniLM, over the cached
frozen blocks, as
- `before`: blocks 1-4 frozen, plain shuffled batches, the full last block (the demo until it was cut);
- `grouped`: + length-grouped batches (`rm.group_by_length`);
- `first_position`: + the last block computing only the position BERT's head reads (models/head_position.py);
- `freeze5`: + block 5 frozen too (the demo now: block 6 and the head trained over cached states of 1-5).
Also the one-off fill of the frozen blocks per block and token, and how far the shortcut moves the rewards."""

from __future__ import annotations

import json
import logging
import tempfile
from unittest import mock

import numpy as np

from bench.common import bench_pairs, bench_renderer, interleaved, timed
from safer_rm.models import head_position, load_reward_model
from safer_rm.models.prefix_cache import PrefixCache
from safer_rm.reward import RMConfig, reward_pairs, train_reward_model
from safer_rm.reward.scoring import Scorer

CUTS = {  # name: (frozen blocks, length-grouped batches, last block at the first position only)
    "before": (4, False, False),
    "grouped": (4, True, False),
    "first_position": (4, True, True),
    "freeze5": (5, True, True),
}


def _shortcut(on: bool):
    """The first-position shortcut applies to every model it can; off, to none (for the `before` timings)."""
    return mock.patch.object(
        head_position, "FIRST_POSITION_HEADS", head_position.FIRST_POSITION_HEADS if on else ()
    )


def run(n_pairs: int = 400, batch_size: int = 8, max_length: int = 128, rounds: int = 3) -> dict:
    logging.getLogger("transformers").setLevel(logging.ERROR)
    label, tok, renderer = bench_renderer("minilm", max_length)
    pairs, source = bench_pairs(n_pairs)
    chosen, rejected = renderer.encode_pairs(pairs)
    seqs = [e.input_ids for e in chosen + rejected]
    tokens = sum(len(s) for s in seqs)
    tmp = tempfile.TemporaryDirectory()
    caches, fill = {}, {}
    for frozen in sorted({c[0] for c in CUTS.values()}):
        caches[frozen] = PrefixCache(frozen, f"bench-{frozen}", f"{tmp.name}/prefix-{frozen}")
        model = load_reward_model("minilm", tok)
        fill[frozen] = timed(
            lambda m=model, f=frozen: caches[f].fill(m, seqs, tok.pad_token_id, progress=False)
        )

    def cut(name: str, what: str):
        frozen, grouped, first = CUTS[name]

        def go() -> float:
            model = load_reward_model("minilm", tok)
            cfg = RMConfig(
                lr=3e-4, epochs=1, batch_size=batch_size, grad_accum=1, freeze_layers=frozen, bf16="false",
                logging_steps=10_000, group_by_length=grouped,
            )  # fmt: skip
            with tempfile.TemporaryDirectory() as out, _shortcut(first):
                info = train_reward_model(
                    model, tok, renderer, pairs, cfg, f"{out}/rm", prefix=caches[frozen]
                )
                if what == "train":
                    return info["train_seconds"]
                return timed(
                    lambda: reward_pairs(
                        Scorer(model, renderer, batch_size=64, prefix=caches[frozen], progress=False), pairs
                    )
                )

        return go

    train = interleaved({n: cut(n, "train") for n in CUTS}, rounds)
    score = interleaved({n: cut(n, "score") for n in CUTS}, rounds)
    model = load_reward_model("minilm", tok).eval()
    rewards = {}
    for on in (False, True):
        with _shortcut(on):
            rewards[on] = reward_pairs(
                Scorer(model, renderer, batch_size=64, prefix=caches[4], progress=False), pairs
            ).margin
    tmp.cleanup()
    return {
        "model": label,
        "pairs": n_pairs,
        "data": source,
        "batch_pairs": batch_size,
        "max_length": max_length,
        "rounds": rounds,
        "tokens": tokens,
        "cuts": {n: {"frozen": c[0], "grouped": c[1], "first_position": c[2]} for n, c in CUTS.items()},
        "train_seconds": train,
        "score_seconds": score,
        "train_speedup_vs_before": {n: train["before"] / s for n, s in train.items()},
        "score_speedup_vs_before": {n: score["before"] / s for n, s in score.items()},
        "fill_us_per_block_token": {f: 1e6 * s / tokens / f for f, s in fill.items()},
        "first_position_max_abs_margin_change": float(np.abs(rewards[True] - rewards[False]).max()),
        "margin_sd": float(rewards[False].std()),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
