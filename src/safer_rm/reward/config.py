"""Configuration of reward-model training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..data.config import SourceConfig
from ..errors import ConfigError
from ..typed_config import require


@dataclass
class RMConfig:
    """Reward-model training (Bradley-Terry over pairs, on transformers.Trainer)."""

    lr: float = 2e-5
    """Peak learning rate."""
    epochs: float = 2.0
    """Passes over the training pairs."""
    batch_size: int = 2
    """Pairs per device per step (each pair is two sequences)."""
    grad_accum: int = 64
    """Gradient accumulation steps (effective batch = batch_size x grad_accum x processes)."""
    scheduler: str = "cosine"
    """Learning-rate schedule (any transformers `lr_scheduler_type`)."""
    warmup_ratio: float = 0.03
    """Share of steps for linear warm-up."""
    weight_decay: float = 0.001
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    bf16: Literal["auto", "true", "false"] = "auto"
    """bf16 mixed precision: `auto` uses it where the hardware has it (CUDA with bf16, or a CPU with AVX-512 BF16/AMX)."""
    freeze_layers: int = 0
    """Freeze the embeddings and the lower N transformer blocks."""
    cache_frozen: bool = True
    """With freeze_layers > 0: compute the frozen blocks once per text and train/score over cached states
    (identical results without dropout in the frozen blocks; much faster, shared by all variants of a run)."""
    group_by_length: bool = True
    """Draw training batches of pairs of similar length (transformers' `LengthGroupedSampler`: shuffled, then
    sorted by length within mega-batches of 50 batches), so little of each batch is padding; false: plain
    shuffled batches."""
    gradient_checkpointing: bool = False
    """Trade compute for memory on large models."""
    seed: int = 0
    """Seed for initialisation of the head, data order and dropout."""
    eval_batch_size: int = 32
    """Pairs per batch when scoring."""
    select_best: bool = False
    """Evaluate held-out pair accuracy after every epoch and keep the best epoch (the reference's model selection)."""
    save_checkpoints: bool = False
    """Save a Trainer checkpoint every epoch so that an interrupted training resumes mid-way."""
    logging_steps: int = 10
    """Log the loss every N optimiser steps."""
    deepspeed: str | None = None
    """DeepSpeed JSON config passed through to transformers.Trainer."""
    fsdp: str = ""
    """FSDP options passed through to transformers.Trainer (e.g. "full_shard auto_wrap")."""
    num_workers: int = 0
    """DataLoader worker processes."""

    def check(self) -> None:
        require(self, ("lr", "epochs"), above=0)
        require(self, ("batch_size", "grad_accum", "eval_batch_size", "logging_steps"), at_least=1)
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError("warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        require(self, ("freeze_layers",), at_least=0)


@dataclass
class EvalConfig:
    """Evaluation: RewardBench sections, RewardBench 2 subsets and held-out in-distribution accuracy."""

    rewardbench: str = "${root}/reward-bench-local/filtered.jsonl"
    """RewardBench-schema file, or a hub id (allenai/reward-bench) read with `rewardbench_split`."""
    rewardbench_hub: str | None = "allenai/reward-bench"
    """Hub id used when the `rewardbench` file does not exist."""
    rewardbench_split: str = "filtered"
    """Split of the hub dataset."""
    rewardbench2: str | None = None
    """RewardBench 2 (best-of-N rows: one prompt, lists of chosen and rejected completions), scored as the
    official code does (per subset, Ties by its own rule, overall the mean of the subsets): a hub id
    (allenai/reward-bench-2), a dataset folder in the hub's layout or a file in its schema; None: off."""
    rewardbench2_split: str = "test"
    """Split of the RewardBench 2 hub id or dataset folder."""
    heldout: bool = True
    """Also score the prompt-disjoint test split, by kind (safety / chat) and by source."""
    max_rewardbench_pairs: int | None = None
    """Evaluate at most this many RewardBench rows (seeded, stratified by subset); None: all."""
    pool: bool = False
    """Also score the evaluation pool: every usable pair of the data sources (and `pool_sources`) that is not
    in the run's data and shares no prompt with training, by kind and by source."""
    pool_max_per_source: int | None = 600
    """At most this many pool pairs per source (seeded sample); None: all."""
    pool_sources: list[SourceConfig] = field(default_factory=list)
    """Sources used only for evaluation, in the pool (e.g. PandaLM's human-voted pairs)."""
    extra: list[SourceConfig | str] = field(default_factory=list)
    """More evaluation sets, each its own named section: a file path, a hub id, or a source mapping (name, path,
    format, kind, split, ...). RewardBench-schema sets are reported by RewardBench section, others as one
    accuracy (and by subset where rows have one)."""
    bootstrap: int = 2000
    """Bootstrap replicates of every interval (paired over evaluation pairs; with several seeds, seeds then pairs)."""

    def extra_sets(self) -> list[SourceConfig]:
        """`extra` with bare paths and hub ids turned into sources named after the file or dataset."""
        out = []
        for item in self.extra:
            if isinstance(item, SourceConfig):
                out.append(item)
                continue
            stem = Path(item.rstrip("/")).name
            for suffix in (".gz", ".jsonl", ".json", ".parquet", ".csv"):
                stem = stem.removesuffix(suffix)
            name = "".join(c if (c.isascii() and c.isalnum()) or c in "_.-" else "-" for c in stem)
            name = name.strip("-._") or "extra"
            out.append(SourceConfig(name=name, path=item, kind="safety"))
        return out

    def check(self) -> None:
        require(self, ("bootstrap",), at_least=100)
        if self.pool_max_per_source is not None and self.pool_max_per_source < 1:
            raise ConfigError("pool_max_per_source", f"must be >= 1 or null, got {self.pool_max_per_source}")
        names = [s.name.lower() for s in self.extra_sets()]
        reserved = {
            "rewardbench",
            "rewardbench2",
            "heldout",
            "pool",
            "chat",
            "chat hard",
            "safety",
            "reasoning",
            "overall",
        }
        bad = sorted({n for n in names if names.count(n) > 1 or n in reserved})
        if bad:
            raise ConfigError(
                "extra",
                f"evaluation set names must be unique (ignoring case) and not {sorted(reserved)}: {bad}",
            )
        for s in self.extra_sets():
            s.check()
