"""Reward-model training throughput: our Bradley-Terry trainer (a thin transformers.Trainer subclass)
against TRL's RewardTrainer on the same embedded model (MiniLM; SmolLM2 rendered through its chat template),
the same pairs (TRL gets our rendered token ids, pre-tokenised, and pads with the same pad id), the same batch
size, steps, precision, seed (so the same batches) and no gradient checkpointing (TRL's RewardConfig turns it
on by default; ours has it off), side by side in one run (interleaved rounds, median). Both are timed by their
Trainer's own `train_runtime` (the training loop alone); ours end to end (tokenising, training, saving the
model) is reported beside it. Also our trainer with the lower blocks frozen over the cached prefix (MiniLM: 5
of 6, the demo's setting; SmolLM2: 26 of 30, configs/smol.yaml's) against full fine-tuning, with the one-off
prefix fill reported separately."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import statistics
import tempfile

import torch

from bench.common import bench_pairs, bench_renderer, interleaved, timed
from safer_rm.models import load_reward_model
from safer_rm.models.prefix_cache import PrefixCache
from safer_rm.precision import use_bf16
from safer_rm.reward import RMConfig, train_reward_model


def run(
    n_pairs: int = 96,
    batch_size: int = 8,
    max_length: int = 128,
    rounds: int = 3,
    *,
    model: str = "minilm",
    freeze_layers: int = 5,
) -> dict:
    """`model`: an embedded model of `bench.common.MODELS`; `freeze_layers`: the blocks frozen (and cached) in
    the third variant."""
    logging.getLogger("transformers").setLevel(logging.ERROR)
    label, tok, renderer = bench_renderer(model, max_length)
    pad_id = tok.pad_token_id
    pairs, source = bench_pairs(n_pairs)
    chosen, rejected = renderer.encode_pairs(pairs)
    tokens = sum(len(e.input_ids) for e in chosen + rejected)
    bf16 = use_bf16("auto")
    steps = math.ceil(len(pairs) / batch_size)
    frozen_key = f"ours_frozen{freeze_layers}_cached"

    end_to_end: list[float] = []
    fills: list[float] = []

    def ours(freeze: int = 0):
        def go():
            with tempfile.TemporaryDirectory() as tmp:
                rm = load_reward_model(model, tok)
                cfg = RMConfig(
                    lr=1e-4,
                    epochs=1,
                    batch_size=batch_size,
                    grad_accum=1,
                    freeze_layers=freeze,
                    bf16="true" if bf16 else "false",
                    logging_steps=10_000,
                )
                prefix = PrefixCache(freeze, "bench", f"{tmp}/prefix", bf16=bf16) if freeze else None
                if (
                    prefix is not None
                ):  # the cache is shared by every variant of a run: filled once, timed apart
                    seqs = [e.input_ids for e in chosen + rejected]
                    fills.append(timed(lambda: prefix.fill(rm, seqs, pad_id, progress=False)))
                out: dict = {}
                wall = timed(
                    lambda: out.update(
                        train_reward_model(rm, tok, renderer, pairs, cfg, f"{tmp}/rm", prefix=prefix)
                    )
                )
                if not freeze:
                    end_to_end.append(wall)
                return out["train_seconds"]

        return go

    def trl():
        from datasets import Dataset
        from trl import RewardConfig, RewardTrainer

        # transformers 5.x renamed `gradient_checkpointing` (now a deprecated alias) activation_checkpointing
        fields = {f.name for f in dataclasses.fields(RewardConfig)}
        checkpointing = next(k for k in ("activation_checkpointing", "gradient_checkpointing") if k in fields)

        ds = Dataset.from_dict(
            {"chosen_ids": [e.input_ids for e in chosen], "rejected_ids": [e.input_ids for e in rejected]}
        )
        with tempfile.TemporaryDirectory() as tmp:
            rm = load_reward_model(model, tok)
            args = RewardConfig(
                output_dir=tmp,
                per_device_train_batch_size=batch_size,
                num_train_epochs=1,
                learning_rate=1e-4,
                bf16=bf16,
                **{checkpointing: False},  # TRL's default is True; ours trains without (like for like)
                seed=0,  # ours: RMConfig.seed 0, as seed and data_seed: the same batches in the same order
                data_seed=0,
                use_cpu=not torch.cuda.is_available(),
                report_to=[],
                save_strategy="no",
                logging_steps=10_000,
                disable_tqdm=True,
                max_length=None,
                disable_dropout=False,
            )
            trainer = RewardTrainer(model=rm, args=args, train_dataset=ds, processing_class=tok)
            # the same sequences and the same padding as ours, or the comparison is off
            got = (
                trainer.data_collator.pad_token_id,
                rm.config.get_text_config().pad_token_id,
                tok.pad_token_id,
            )
            if got != (pad_id,) * 3:
                raise RuntimeError(f"TRL pads with {got[:2]} (collator, model), ours with {pad_id}")
            prepared = trainer.train_dataset
            if [list(x) for x in prepared["chosen_ids"]] != [e.input_ids for e in chosen] or [
                list(x) for x in prepared["rejected_ids"]
            ] != [e.input_ids for e in rejected]:
                raise RuntimeError("TRL's prepared dataset differs from our rendered token ids")
            return float(trainer.train().metrics["train_runtime"])

    # untimed: one epoch of full fine-tuning first, so that the first timed variant does not also pay the
    # process's one-off costs (kernel set-up, first allocations, each batch shape's first pass: the variants
    # and TRL see the same batches); with 2 rounds the median would keep them
    with tempfile.TemporaryDirectory() as tmp:
        warm = RMConfig(
            lr=1e-4, epochs=1, batch_size=batch_size, grad_accum=1, bf16="true" if bf16 else "false"
        )
        train_reward_model(load_reward_model(model, tok), tok, renderer, pairs, warm, f"{tmp}/rm")
    secs = interleaved({"ours": ours(0), "trl": trl, frozen_key: ours(freeze_layers)}, rounds)
    return {
        "model": label,
        "pairs": n_pairs,
        "steps": steps,
        "batch_pairs": batch_size,
        "max_length": max_length,
        "template": renderer.mode,
        "pad_id": pad_id,
        "freeze_layers": freeze_layers,
        "trl_gradient_checkpointing": False,
        "bf16": bf16,
        "rounds": rounds,
        "data": source,
        "tokens_per_epoch": tokens,
        **{f"{k}_tokens_per_s": tokens / v for k, v in secs.items()},
        "ours_end_to_end_tokens_per_s": tokens / statistics.median(end_to_end),
        "prefix_fill_seconds": statistics.median(fills),
        "train_seconds": secs,
        "ours_vs_trl": secs["trl"] / secs["ours"],
        "frozen_cached_vs_full": secs["ours"] / secs[frozen_key],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
