"""Bradley-Terry reward-model training as a thin layer over `transformers.Trainer`, so that
`accelerate launch`, `torchrun`, DeepSpeed and FSDP work unchanged."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from transformers import PrinterCallback, Trainer, TrainerCallback

from ..data.records import PreferencePair
from ..io import quiet, write_json, write_text
from ..models.batching import pad_batch
from ..models.head_position import first_position_only
from ..models.layers import Resume, transformer_blocks
from ..models.prefix_cache import PrefixCache
from ..models.render import Encoded, Renderer, truncation_counts
from ..precision import use_bf16
from .arguments import training_arguments
from .config import RMConfig
from .files import RENDER_FILE

log = logging.getLogger(__name__)


class PairDataset(Dataset):
    """Pre-tokenised pairs: item i is {"chosen": ids, "rejected": ids}."""

    def __init__(self, chosen: Sequence[Encoded], rejected: Sequence[Encoded]):
        self.chosen, self.rejected = chosen, rejected

    def __len__(self) -> int:
        return len(self.chosen)

    def __getitem__(self, i: int) -> dict:
        return {"chosen": self.chosen[i].input_ids, "rejected": self.rejected[i].input_ids}


@dataclass
class PairCollator:
    """Stack a batch as [chosen_0..chosen_{B-1}, rejected_0..rejected_{B-1}], right-padded; with a prefix
    cache, also the cached frozen-layer states of every sequence."""

    pad_id: int
    prefix: PrefixCache | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        seqs = [f["chosen"] for f in features] + [f["rejected"] for f in features]
        ids, mask = pad_batch(seqs, self.pad_id)
        batch = {"input_ids": ids, "attention_mask": mask}
        if self.prefix is not None:
            batch["prefix_hidden"] = self.prefix.batch(seqs, ids.shape[1])
        return batch


def bradley_terry_loss(rewards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-log sigmoid(r_chosen - r_rejected), mean over pairs; rewards stacked chosen-then-rejected."""
    n = rewards.shape[0] // 2
    margin = rewards[:n] - rewards[n:]
    return -F.logsigmoid(margin).mean(), margin


class BradleyTerryTrainer(Trainer):
    """`Trainer` whose loss is the pairwise Bradley-Terry loss; evaluation returns per-pair margins."""

    loss_is_scaled_for_ga = False  # our loss is a per-micro-batch mean: let Trainer divide by accumulation

    def __init__(self, *args, resume: Resume | None = None, lengths: list[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.resume = resume
        self.lengths = lengths

    def _get_train_sampler(self, *args, **kwargs):
        """With `lengths` (a pair's is its longer side: both are padded to one width), batches of pairs of
        similar length; transformers' own switch for it is named differently across its versions."""
        if self.lengths is None:
            return super()._get_train_sampler(*args, **kwargs)
        from transformers.trainer_pt_utils import LengthGroupedSampler

        size = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthGroupedSampler(size, lengths=self.lengths)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        feed = (
            self.resume.feed(inputs["prefix_hidden"])
            if "prefix_hidden" in inputs
            else contextlib.nullcontext()
        )
        with feed, first_position_only(self.model):  # only what the head reads (models/head_position.py)
            rewards = (
                model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
                .logits[:, 0]
                .float()
            )
        loss, margin = bradley_terry_loss(rewards)
        return (loss, {"margin": margin}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, out = self.compute_loss(model, inputs, return_outputs=True)
        margin = out["margin"].detach()
        return loss.detach(), margin, torch.zeros_like(margin)


def pair_accuracy(pred) -> dict[str, float]:
    margin = np.asarray(pred.predictions).reshape(-1)
    return {"accuracy": float((margin > 0).mean())}


EMBEDDING_MODULES = ("embeddings", "embed_tokens", "embed_positions", "wte", "wpe", "word_embeddings")


def freeze_lower(model, n_layers: int) -> int:
    """Freeze input embeddings and the lower `n_layers` blocks; returns the trainable parameter count."""
    if n_layers <= 0:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    blocks = transformer_blocks(model)
    if n_layers > len(blocks):
        raise ValueError(f"rm.freeze_layers={n_layers} but the model has {len(blocks)} blocks")
    for block in list(blocks)[:n_layers]:
        block.requires_grad_(False)
    model.get_input_embeddings().requires_grad_(False)
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in EMBEDDING_MODULES:
            module.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LossHistory(TrainerCallback):
    def __init__(self):
        self.rows: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        row = {"step": state.global_step}
        if "loss" in logs:
            log.info(
                "reward model step %d: %s",
                state.global_step,
                ", ".join(
                    f"{k}={logs[k]}" for k in ("loss", "grad_norm", "learning_rate", "epoch") if k in logs
                ),
            )
        for key, value in logs.items():
            try:  # recent transformers hand logs over as formatted strings
                row[key] = float(value)
            except (TypeError, ValueError):
                continue
        self.rows.append(row)


def _checkpointing(model) -> bool:
    """Whether the model recomputes its blocks' activations (transformers >= 5.2x names it activation
    checkpointing and deprecates the older name)."""
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(model), name):
            return bool(getattr(model, name))
    return False


def train_reward_model(
    model,
    tokenizer,
    renderer: Renderer,
    train_pairs: Sequence[PreferencePair],
    cfg: RMConfig,
    out_dir: str | os.PathLike,
    eval_pairs: Sequence[PreferencePair] = (),
    resume: bool = False,
    inputs_key: str | None = None,
    prefix: PrefixCache | None = None,
) -> dict:
    """Train `model` on pairs and save it (safetensors) with its tokenizer and render settings to `out_dir`.
    Returns a summary: steps, loss history, truncation counts, trainable parameters. With `inputs_key` (what the
    training data and settings are), checkpoints left by a training with another key are discarded, not resumed."""
    out_dir = Path(out_dir)
    chosen, rejected = renderer.encode_pairs(train_pairs)
    trunc = truncation_counts(chosen, rejected)
    if trunc["prompt_truncated"] or trunc["response_truncated"]:
        log.info(
            "truncated to %d tokens (kept, response end preserved): %d pairs lost prompt tokens, "
            "%d pairs lost response tokens",
            renderer.max_length,
            trunc["prompt_truncated"],
            trunc["response_truncated"],
        )
    eval_ds = None
    if eval_pairs and cfg.select_best:
        ec, er = renderer.encode_pairs(eval_pairs)
        eval_ds = PairDataset(ec, er)
    trainable = freeze_lower(model, cfg.freeze_layers)
    bf16 = use_bf16(cfg.bf16)
    if prefix is not None:
        if prefix.layer != cfg.freeze_layers or cfg.freeze_layers == 0:
            raise ValueError(f"prefix cache of layer {prefix.layer} needs rm.freeze_layers={prefix.layer}")
        if prefix.bf16 != bf16:
            raise ValueError(f"prefix cache computed with bf16={prefix.bf16} for a training with bf16={bf16}")
        seqs = [e.input_ids for e in chosen + rejected]
        if eval_ds is not None:
            seqs += [e.input_ids for e in eval_ds.chosen + eval_ds.rejected]
        prefix.fill(model, seqs, tokenizer.pad_token_id, cfg.eval_batch_size)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    per_epoch = math.ceil(len(train_pairs) / cfg.batch_size / cfg.grad_accum)
    args = training_arguments(
        cfg,
        out_dir,
        bf16=bf16,
        per_epoch=per_epoch,
        has_eval=eval_ds is not None,
        quiet=quiet(),
        use_cpu=not torch.cuda.is_available(),
    )
    history = LossHistory()
    trainer = BradleyTerryTrainer(
        model=model,
        args=args,
        data_collator=PairCollator(tokenizer.pad_token_id, prefix),
        train_dataset=PairDataset(chosen, rejected),
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        compute_metrics=pair_accuracy if eval_ds is not None else None,
        callbacks=[history],
        resume=Resume(model, prefix.layer) if prefix is not None else None,
        lengths=[max(len(c.input_ids), len(r.input_ids)) for c, r in zip(chosen, rejected)]
        if cfg.group_by_length
        else None,
    )
    if args.disable_tqdm:
        trainer.remove_callback(PrinterCallback)  # quiet: the loss goes to the log only
    checkpoint = None
    marker = out_dir / "checkpoints" / "inputs.txt"
    made = list((out_dir / "checkpoints").glob("checkpoint-*"))
    if inputs_key is not None and made and (not marker.is_file() or marker.read_text() != inputs_key):
        log.info("reward model: discarding checkpoints made with other inputs in %s", out_dir / "checkpoints")
        for ck in made:  # made on other data or settings: resuming them would keep the old weights
            shutil.rmtree(ck)
    if inputs_key is not None and trainer.is_world_process_zero():
        write_text(marker, inputs_key)
    if resume and (out_dir / "checkpoints").is_dir():
        from transformers.trainer_utils import get_last_checkpoint

        checkpoint = get_last_checkpoint(str(out_dir / "checkpoints"))
        if checkpoint:
            log.info("resuming reward-model training from %s", checkpoint)
    with trainer.resume or contextlib.nullcontext():
        result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(str(out_dir))
    best = trainer.state.best_model_checkpoint
    if trainer.is_world_process_zero():
        # the model is saved: its checkpoints (weights and optimizer state, ~12 bytes a parameter each) are
        # needed no more; a crash before this line resumes from them (--resume)
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
        # Trainer also pickles its arguments beside the weights; keep them as JSON instead (no pickle in outputs)
        (out_dir / "training_args.bin").unlink(missing_ok=True)
        (out_dir / "training_args.json").write_text(args.to_json_string(), encoding="utf-8")
        tokenizer.save_pretrained(str(out_dir))
        # how its frozen states are computed: whoever loads it computes them alike
        frozen = {"frozen_layers": cfg.freeze_layers, "frozen_bf16": bf16}
        write_json(out_dir / RENDER_FILE, {**renderer.settings(), **frozen})
    return {
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "train_seconds": float(result.metrics.get("train_runtime", 0.0)),
        "trainable_parameters": int(trainable),
        "bf16": bf16,
        "gradient_checkpointing": _checkpointing(model),
        "grad_accum": int(args.gradient_accumulation_steps),
        "truncation": trunc,
        "history": history.rows,
        # the epoch `select_best` kept (its checkpoint folder is deleted once the model is saved)
        "best_step": int(best.rsplit("-", 1)[1]) if best else None,
        "best_metric": trainer.state.best_metric,
    }
