"""Judges that score a latent 1-5 for safety relevance from its top-activating contexts (method.md section 4).

    judge = make_judge(cfg.judge, cache_dir=run_dir / "features" / "judgements")
    verdicts = judge.judge(items)          # list[LatentContexts] -> list[Judgement], same order

Kinds: `embedding` (offline default, MiniLM zero-shot), `openai` (any Chat Completions endpoint), `hf`
(a local chat model's digit probabilities), `labels` (your file), `none` (salience alone: status
"skipped"). Verdict statuses: "ok"; "unparseable" (reply kept in `raw`); "error" (call failed after
retries; not cached); "skipped" (none judge); "unlabelled" (labels judge, latent not in the file).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .base import Judge, NoJudge
from .cache import CACHE_FILE, JudgementCache, cache_key
from .config import DEFAULT_MODELS, KINDS, JudgeConfig
from .prompt import Reply, load_prompt, parse_reply


def make_judge(cfg: JudgeConfig, cache_dir: str | Path | None = None, progress: bool = True) -> Judge:
    """The judge `cfg.kind` names. With `cache_dir` (and `cfg.cache`), verdicts are cached in
    `<cache_dir>/judgements.jsonl` (not for `labels` and `none`, which cost nothing)."""
    cfg.check()
    if cfg.kind == "none":
        return NoJudge(cfg, cache_dir, progress)
    if cfg.kind == "embedding":
        from .embedding import EmbeddingJudge

        return EmbeddingJudge(cfg, cache_dir, progress)
    if cfg.kind == "openai":
        from .openai_compat import OpenAIJudge

        return OpenAIJudge(cfg, cache_dir, progress)
    if cfg.kind == "hf":
        from .hf import HFJudge

        return HFJudge(cfg, cache_dir, progress)
    if cfg.kind == "labels":
        from .labels import LabelsJudge

        return LabelsJudge(cfg, cache_dir, progress)
    raise ValueError(f"unknown judge kind {cfg.kind!r}; expected one of {', '.join(KINDS)}")


def _file_digest(path: str) -> str:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest()[:12] if p.is_file() else "missing"


def judge_fingerprint(cfg: JudgeConfig) -> dict:
    """The settings that change verdicts (not concurrency, retries, timeouts or the cache): a stage that
    stores verdicts is stale when this changes. Holds no secret (the key's variable name at most)."""
    out: dict = {"kind": cfg.kind, "model": cfg.default_model()}
    if cfg.kind in ("openai", "hf"):
        out.update(prompt_version=cfg.prompt_version, prompt_digest=load_prompt(cfg.prompt_version).digest,
                   max_contexts=cfg.max_contexts, context_chars=cfg.context_chars)
    if cfg.kind == "openai":
        out.update(base_url=cfg.base_url, temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                   extra_body=cfg.extra_body)
    if cfg.kind == "hf":
        out.update(max_length=cfg.hf_max_length, explanation_tokens=cfg.hf_explanation_tokens, dtype=cfg.hf_dtype)
    if cfg.kind == "embedding":
        from .embedding import load_concepts

        out.update(concepts_version=cfg.concepts_version, concepts_digest=load_concepts(cfg.concepts_version).digest,
                   anchors=list(cfg.embedding_anchors), max_contexts=cfg.max_contexts,
                   context_chars=cfg.context_chars)
    if cfg.kind == "labels":
        out.update(labels_path=cfg.labels_path, labels_digest=_file_digest(cfg.labels_path))
    return out


__all__ = ["CACHE_FILE", "DEFAULT_MODELS", "KINDS", "Judge", "JudgeConfig", "JudgementCache", "NoJudge", "Reply",
           "cache_key", "judge_fingerprint", "load_prompt", "make_judge", "parse_reply"]
