"""Judges that score a latent 1-5 for safety relevance from its top-activating contexts."""

from __future__ import annotations

from pathlib import Path

from .base import Judge, NoJudge
from .config import KINDS, JudgeConfig


def make_judge(cfg: JudgeConfig, cache_dir: str | Path | None = None) -> Judge:
    if cfg.kind == "none":
        return NoJudge(cfg, cache_dir)
    if cfg.kind == "embedding":
        from .embedding import EmbeddingJudge

        return EmbeddingJudge(cfg, cache_dir)
    if cfg.kind == "openai":
        from .openai import OpenAIJudge

        return OpenAIJudge(cfg, cache_dir)
    if cfg.kind == "hf":
        from .hf import HFJudge

        return HFJudge(cfg, cache_dir)
    if cfg.kind == "labels":
        from .labels import LabelsJudge

        return LabelsJudge(cfg, cache_dir)
    raise ValueError(f"unknown judge kind {cfg.kind!r}; expected one of {KINDS}")


def judge_fingerprint(cfg: JudgeConfig) -> dict:
    """The settings that change verdicts (not concurrency, retries or where the key lives)."""
    return {"kind": cfg.kind, "model": cfg.default_model(), "prompt_version": cfg.prompt_version,
            "temperature": cfg.temperature, "max_contexts": cfg.max_contexts, "labels_path": cfg.labels_path,
            "concepts_version": cfg.concepts_version, "base_url": cfg.base_url if cfg.kind == "openai" else ""}


__all__ = ["KINDS", "Judge", "JudgeConfig", "NoJudge", "judge_fingerprint", "make_judge"]
