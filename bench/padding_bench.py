"""Padding of the batches an embedded model is run on (a check, not a timing): every batch must be padded
only to its own longest sequence, on the right, with the tokenizer's pad id, and no sequence may end with
that id (a decoder reads its reward at the last non-pad token). Reports the padding fraction (pad tokens /
all tokens of the padded batches) of
- `length_batched`: our length-grouped batches (`length_batches` + `pad_batch`: extraction, the prefix-cache
  fill, scoring), against `unsorted`: the same sequences and batch size in data order;
- `training`: the pair batches of one training epoch as the Trainer's seeded sampler draws them (seed 0, ours
  and TRL's alike), collated by ours (`PairCollator`) and by TRL's `DataCollatorForPreference`: both must
  give the same tensors;
- `training_length_grouped`: the same epoch as our trainer draws it with `rm.group_by_length` (the default)."""

from __future__ import annotations

import json
import logging
import tempfile

import torch

from bench.common import bench_pairs, bench_renderer
from safer_rm.models.batching import length_batches, pad_batch
from safer_rm.reward.train import PairCollator, PairDataset


def padded_to_longest(seqs: list[list[int]], ids: torch.Tensor, mask: torch.Tensor, pad_id: int) -> bool:
    """`ids`/`mask` hold `seqs` right-padded with `pad_id` to the longest of them, and no wider."""
    if ids.shape != (len(seqs), max(len(s) for s in seqs)) or mask.shape != ids.shape:
        return False
    for row, s in enumerate(seqs):
        n = len(s)
        if ids[row, :n].tolist() != list(s) or int(mask[row, :n].sum()) != n or int(mask[row, n:].sum()):
            return False
        if not bool((ids[row, n:] == pad_id).all()):
            return False
    return True


def pad_fraction(masks: list[torch.Tensor]) -> float:
    return 1 - sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)


def train_batches(
    n_pairs: int, batch_size: int, seed: int = 0, lengths: list[int] | None = None
) -> list[list[int]]:
    """Pair indices of one epoch's batches as `transformers.Trainer` draws them with seed/data_seed `seed`
    (its seeded random sampler), read from a Trainer's own train dataloader over a dataset of indices; with
    `lengths`, as our trainer draws them with `rm.group_by_length` (length-grouped)."""
    from transformers import Trainer, TrainingArguments, set_seed

    from safer_rm.reward.train import BradleyTerryTrainer

    class Index(torch.utils.data.Dataset):
        def __len__(self):
            return n_pairs

        def __getitem__(self, i):
            return i

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=batch_size,
            seed=seed,
            data_seed=seed,
            remove_unused_columns=False,
            report_to=[],
            use_cpu=not torch.cuda.is_available(),
        )
        if lengths is None:
            trainer = Trainer(
                model=torch.nn.Linear(1, 1), args=args, train_dataset=Index(), data_collator=list
            )
        else:
            set_seed(seed)  # as Trainer.train does before drawing the first epoch
            trainer = BradleyTerryTrainer(
                model=torch.nn.Linear(1, 1),
                args=args,
                train_dataset=Index(),
                data_collator=list,
                lengths=lengths,
            )
        return [list(b) for b in trainer.get_train_dataloader()]


def run(
    n_pairs: int = 256,
    batch_size: int = 32,
    train_batch_pairs: int = 8,
    max_length: int = 128,
    *,
    model: str = "minilm",
) -> dict:
    """`batch_size`: sequences per length-grouped batch (extraction's default 32); `train_batch_pairs`: pairs
    per training batch (2 sequences each)."""
    from trl.trainer.reward_trainer import DataCollatorForPreference

    logging.getLogger("transformers").setLevel(logging.ERROR)
    label, tok, renderer = bench_renderer(model, max_length)
    pad_id = tok.pad_token_id
    pairs, source = bench_pairs(n_pairs)
    chosen, rejected = renderer.encode_pairs(pairs)
    seqs = [
        e.input_ids for pair in zip(chosen, rejected) for e in pair
    ]  # extraction's order: pair p side s at 2p+s
    checks = {"no_sequence_ends_with_pad": all(s[-1] != pad_id for s in seqs if s)}

    def grouped(batches: list[list[int]]) -> tuple[float, bool, int]:
        masks, ok = [], True
        for idx in batches:
            batch = [seqs[i] for i in idx]
            ids, mask = pad_batch(batch, pad_id)
            ok &= padded_to_longest(batch, ids, mask, pad_id)
            masks.append(mask)
        return pad_fraction(masks), ok, len(batches)

    by_length = grouped(length_batches([len(s) for s in seqs], batch_size))
    in_order = grouped(
        [list(range(i, min(i + batch_size, len(seqs)))) for i in range(0, len(seqs), batch_size)]
    )
    checks["length_batched_padded_to_longest"] = by_length[1]
    checks["unsorted_padded_to_longest"] = in_order[1]

    ours, theirs = PairCollator(pad_id), DataCollatorForPreference(pad_token_id=pad_id)
    data = PairDataset(chosen, rejected)
    masks, same, longest = [], True, True
    order = train_batches(len(pairs), train_batch_pairs)
    for idx in order:
        a = ours([data[i] for i in idx])
        b = theirs([{"chosen_ids": chosen[i].input_ids, "rejected_ids": rejected[i].input_ids} for i in idx])
        batch = [chosen[i].input_ids for i in idx] + [rejected[i].input_ids for i in idx]
        longest &= padded_to_longest(batch, a["input_ids"], a["attention_mask"], pad_id)
        same &= torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(
            a["attention_mask"], b["attention_mask"]
        )
        masks.append(a["attention_mask"])
    checks["training_padded_to_longest"] = longest
    checks["training_trl_collator_identical"] = same
    pair_lengths = [max(len(c.input_ids), len(r.input_ids)) for c, r in zip(chosen, rejected)]
    grouped_order = train_batches(len(pairs), train_batch_pairs, lengths=pair_lengths)
    grouped_masks = [ours([data[i] for i in idx])["attention_mask"] for idx in grouped_order]
    checks["grouped_training_covers_every_pair_once"] = sorted(i for b in grouped_order for i in b) == list(
        range(len(pairs))
    )
    lengths = [len(s) for s in seqs]
    return {
        "model": label,
        "pairs": len(pairs),
        "data": source,
        "template": renderer.mode,
        "max_length": max_length,
        "pad_id": pad_id,
        "pad_token": tok.pad_token,
        "tokens": sum(lengths),
        "sequence_length": {"min": min(lengths), "mean": sum(lengths) / len(lengths), "max": max(lengths)},
        "length_batched": {
            "batch_sequences": batch_size,
            "batches": by_length[2],
            "padding_fraction": by_length[0],
        },
        "unsorted": {"batch_sequences": batch_size, "batches": in_order[2], "padding_fraction": in_order[0]},
        "training": {
            "batch_pairs": train_batch_pairs,
            "batches": len(order),
            "padding_fraction": pad_fraction(masks),
        },
        "training_length_grouped": {
            "batch_pairs": train_batch_pairs,
            "batches": len(grouped_order),
            "padding_fraction": pad_fraction(grouped_masks),
        },
        "checks": checks,
        "ok": all(checks.values()),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
