"""Reward-model training throughput: our Bradley-Terry trainer (a thin transformers.Trainer subclass)
against TRL's RewardTrainer on the same model, the same pairs (TRL gets them pre-tokenised), the same batch
size, steps and precision, side by side in one run (interleaved rounds, median). Both are timed by their
Trainer's own `train_runtime` (the training loop alone); ours end to end (tokenising, training, saving the
model) is reported beside it. Also our trainer with the lower 4 blocks frozen over the cached prefix (the
demo's setting) against full fine-tuning, with the one-off prefix fill reported separately."""

from __future__ import annotations

import json
import logging
import statistics
import tempfile

import torch

from bench.common import bench_pairs, interleaved, timed
from safer_rm.models import Renderer, load_reward_model, load_tokenizer
from safer_rm.models.prefix_cache import PrefixCache
from safer_rm.reward import RMConfig, train_reward_model
from safer_rm.reward.train import use_bf16


def run(n_pairs: int = 96, batch_size: int = 8, max_length: int = 128, rounds: int = 3) -> dict:
    logging.getLogger("transformers").setLevel(logging.ERROR)
    tok = load_tokenizer("minilm")
    renderer = Renderer(tok, max_length)
    pairs, source = bench_pairs(n_pairs)
    chosen, rejected = renderer.encode_pairs(pairs)
    tokens = sum(len(e.input_ids) for e in chosen + rejected)
    bf16 = use_bf16("auto")
    steps = n_pairs // batch_size

    end_to_end: list[float] = []
    fills: list[float] = []

    def ours(freeze: int = 0):
        def go():
            with tempfile.TemporaryDirectory() as tmp:
                model = load_reward_model("minilm", tok)
                cfg = RMConfig(
                    lr=1e-4,
                    epochs=1,
                    batch_size=batch_size,
                    grad_accum=1,
                    freeze_layers=freeze,
                    bf16="true" if bf16 else "false",
                    logging_steps=10_000,
                )
                prefix = PrefixCache(freeze, "bench", f"{tmp}/prefix") if freeze else None
                if (
                    prefix is not None
                ):  # the cache is shared by every variant of a run: filled once, timed apart
                    fills.append(
                        timed(
                            lambda: prefix.fill(
                                model,
                                [e.input_ids for e in chosen + rejected],
                                tok.pad_token_id,
                                progress=False,
                            )
                        )
                    )
                out: dict = {}
                wall = timed(
                    lambda: out.update(
                        train_reward_model(model, tok, renderer, pairs, cfg, f"{tmp}/rm", prefix=prefix)
                    )
                )
                if not freeze:
                    end_to_end.append(wall)
                return out["train_seconds"]

        return go

    def trl():
        from datasets import Dataset
        from trl import RewardConfig, RewardTrainer

        ds = Dataset.from_dict(
            {"chosen_ids": [e.input_ids for e in chosen], "rejected_ids": [e.input_ids for e in rejected]}
        )
        with tempfile.TemporaryDirectory() as tmp:
            model = load_reward_model("minilm", tok)
            args = RewardConfig(
                output_dir=tmp,
                per_device_train_batch_size=batch_size,
                num_train_epochs=1,
                learning_rate=1e-4,
                bf16=bf16,
                use_cpu=not torch.cuda.is_available(),
                report_to=[],
                save_strategy="no",
                logging_steps=10_000,
                disable_tqdm=True,
                max_length=None,
                disable_dropout=False,
            )
            trainer = RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
            return float(trainer.train().metrics["train_runtime"])

    secs = interleaved({"ours": ours(0), "trl": trl, "ours_frozen4_cached": ours(4)}, rounds)
    return {
        "model": "all-MiniLM-L6-v2",
        "pairs": n_pairs,
        "steps": steps,
        "batch_pairs": batch_size,
        "bf16": bf16,
        "data": source,
        "tokens_per_epoch": tokens,
        **{f"{k}_tokens_per_s": tokens / v for k, v in secs.items()},
        "ours_end_to_end_tokens_per_s": tokens / statistics.median(end_to_end),
        "prefix_fill_seconds": statistics.median(fills),
        "train_seconds": secs,
        "ours_vs_trl": secs["trl"] / secs["ours"],
        "frozen_cached_vs_full": secs["ours"] / secs["ours_frozen4_cached"],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
