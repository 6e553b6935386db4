"""Judges that score a latent 1-5 for safety relevance from its top-activating contexts (docs/method.md §4).

    judge = make_judge(cfg.judge, cache_dir=run_dir / "features" / "judgements")
    verdicts = judge.judge(items)          # list[LatentContexts] -> list[Judgement], same order

Kinds: `embedding` (offline default, MiniLM zero-shot), `openai` (any Chat Completions endpoint), `hf`
(a local chat model's digit probabilities), `labels` (your file), `none` (salience alone: status
"skipped"). Verdict statuses: "ok"; "unparseable" (reply kept in `raw`); "error" (call failed after
retries; not cached); "skipped" (none judge); "unlabelled" (labels judge, latent not in the file).
"""

from __future__ import annotations

from pathlib import Path

from .base import Judge, NoJudge
from .cache import CACHE_FILE, JudgementCache, cache_key
from .config import DEFAULT_MODELS, KINDS, JudgeConfig
from .fingerprint import judge_fingerprint
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


__all__ = [
    "CACHE_FILE",
    "DEFAULT_MODELS",
    "KINDS",
    "Judge",
    "JudgeConfig",
    "JudgementCache",
    "NoJudge",
    "Reply",
    "cache_key",
    "judge_fingerprint",
    "load_prompt",
    "make_judge",
    "parse_reply",
]
