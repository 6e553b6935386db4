"""Reward-model training throughput against batch size, in the demo's setting (MiniLM, 128 tokens, the lower 4
blocks frozen over the cached prefix, the machine's bf16 setting): the same pairs and epochs at every batch
size, interleaved rounds, median of the Trainer's own `train_runtime`. Whether a larger batch also trains as
well is a quality question this does not answer; the closing note of the issue that added it has that run."""

from __future__ import annotations

import json
import logging
import tempfile

from bench.common import bench_pairs, interleaved
from safer_rm.models import Renderer, load_reward_model, load_tokenizer
from safer_rm.models.prefix_cache import PrefixCache
from safer_rm.precision import use_bf16
from safer_rm.reward import RMConfig, train_reward_model


def run(
    n_pairs: int = 192, batches: tuple[int, ...] = (4, 8, 16, 32), max_length: int = 128, rounds: int = 3
) -> dict:
    logging.getLogger("transformers").setLevel(logging.ERROR)
    tok = load_tokenizer("minilm")
    renderer = Renderer(tok, max_length, min_prompt_tokens=32)
    pairs, source = bench_pairs(n_pairs)
    chosen, rejected = renderer.encode_pairs(pairs)
    tokens = sum(len(e.input_ids) for e in chosen + rejected)
    bf16 = use_bf16("auto")
    tmp = tempfile.TemporaryDirectory()
    prefix = PrefixCache(4, "bench-batch", f"{tmp.name}/prefix", bf16=bf16)
    prefix.fill(
        load_reward_model("minilm", tok),
        [e.input_ids for e in chosen + rejected],
        tok.pad_token_id,
        progress=False,
    )

    def at(batch: int):
        def go() -> float:
            with tempfile.TemporaryDirectory() as out:
                cfg = RMConfig(
                    lr=3e-4,
                    epochs=1,
                    batch_size=batch,
                    grad_accum=1,
                    freeze_layers=4,
                    bf16="true" if bf16 else "false",
                    logging_steps=10_000,
                )
                model = load_reward_model("minilm", tok)
                info = train_reward_model(model, tok, renderer, pairs, cfg, f"{out}/rm", prefix=prefix)
                return info["train_seconds"]

        return go

    secs = interleaved({str(b): at(b) for b in batches}, rounds)
    tmp.cleanup()
    base = secs[str(batches[0])]
    return {
        "model": "all-MiniLM-L6-v2, blocks 1-4 frozen and cached",
        "pairs": n_pairs,
        "max_length": max_length,
        "bf16": bf16,
        "data": source,
        "tokens_per_epoch": tokens,
        "train_seconds": secs,
        "pairs_per_s": {b: n_pairs / s for b, s in secs.items()},
        "speedup_vs_smallest": {b: base / s for b, s in secs.items()},
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
