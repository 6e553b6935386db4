"""The one list of judge settings that change verdicts: used for the features stage's fingerprint and for
the judgement cache's keys."""

from __future__ import annotations

from pathlib import Path

from ...io import sha256_file
from .concepts import load_concepts
from .config import JudgeConfig
from .prompt import load_prompt


def _file_digest(path: str) -> str:
    return sha256_file(path)[:12] if Path(path).is_file() else "missing"


def judge_fingerprint(cfg: JudgeConfig) -> dict:
    """The settings that change verdicts (not concurrency, retries, timeouts or the cache): a stage that
    stores verdicts is stale when this changes, and its digest is part of every cached verdict's key, so
    the two can never disagree. Holds no secret (the key's variable name at most)."""
    out: dict = {"kind": cfg.kind, "model": cfg.default_model()}
    if cfg.kind in ("openai", "hf"):
        out.update(
            prompt_version=cfg.prompt_version,
            prompt_digest=load_prompt(cfg.prompt_version).digest,
            max_contexts=cfg.max_contexts,
            context_chars=cfg.context_chars,
        )
    if cfg.kind == "openai":
        out.update(
            base_url=cfg.base_url,
            temperature=cfg.temperature,
            max_tokens=cfg.max_tokens,
            extra_body=cfg.extra_body,
        )
    if cfg.kind == "hf":
        out.update(
            max_length=cfg.hf_max_length, explanation_tokens=cfg.hf_explanation_tokens, dtype=cfg.hf_dtype
        )
    if cfg.kind == "embedding":
        out.update(
            concepts_version=cfg.concepts_version,
            concepts_digest=load_concepts(cfg.concepts_version).digest,
            anchors=list(cfg.embedding_anchors),
            max_contexts=cfg.max_contexts,
            context_chars=cfg.context_chars,
        )
    if cfg.kind == "labels":
        out.update(labels_path=cfg.labels_path, labels_digest=_file_digest(cfg.labels_path))
    return out
