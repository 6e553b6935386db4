"""The reward model's config mapped onto `transformers.TrainingArguments`, in one place.

Most fields map one to one. The warm-up is the exception that drifted: `RMConfig.warmup_ratio` is a share of
the optimizer steps. transformers 4 has a `warmup_ratio` argument and reads `warmup_steps` as a count (a
value below 1 there means no warm-up at all); transformers 5 dropped `warmup_ratio` and reads a
`warmup_steps` below 1 as that share. `warmup_arguments` picks the form the installed version reads as a
share, so the scheduler warms up over `ceil(warmup_ratio x steps)` steps on both (tests/test_reward.py)."""

from __future__ import annotations

import inspect
from pathlib import Path

from transformers import TrainingArguments

from .config import RMConfig


def warmup_arguments(ratio: float) -> dict:
    """The TrainingArguments field that makes the warm-up `ratio` of all steps in this transformers."""
    if "warmup_ratio" in inspect.signature(TrainingArguments).parameters:
        return {"warmup_ratio": ratio}  # transformers 4
    return {"warmup_steps": ratio}  # transformers 5: below 1 is a share of the steps


def training_arguments(
    cfg: RMConfig, out_dir: Path, *, bf16: bool, per_epoch: int, has_eval: bool, quiet: bool, use_cpu: bool
) -> TrainingArguments:
    """TrainingArguments for one reward model: checkpoints go to `out_dir/checkpoints`; with `has_eval`
    (`select_best` and evaluation pairs), the best epoch by pair accuracy is loaded at the end. At most two
    checkpoints exist at a time (the best and the last), one without evaluation."""
    return TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.scheduler,
        **warmup_arguments(cfg.warmup_ratio),
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        num_train_epochs=cfg.epochs,
        bf16=bf16,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=max(1, min(cfg.logging_steps, per_epoch)),
        save_strategy="epoch" if (cfg.save_checkpoints or cfg.select_best) else "no",
        # with load_best_model_at_end, transformers' rotation never deletes the best checkpoint: 2 keeps the
        # best and the last (resume needs the last); train.py deletes both once the model is saved
        save_total_limit=2 if has_eval else 1,
        eval_strategy="epoch" if has_eval else "no",
        load_best_model_at_end=has_eval,
        metric_for_best_model="accuracy" if has_eval else None,
        greater_is_better=True,
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=cfg.num_workers,
        deepspeed=cfg.deepspeed,
        fsdp=cfg.fsdp or None,
        disable_tqdm=quiet,
        use_cpu=use_cpu,
    )
