"""One interface for every judge, with the disk cache in front of it."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from ..types import Judgement, LatentContexts
from .cache import JudgementCache, cache_key
from .config import JudgeConfig

log = logging.getLogger(__name__)


class Judge(ABC):
    """Scores latents 1-5 for safety relevance from their contexts. Subclasses implement `_judge`;
    `judge` serves cached verdicts and stores new ones (transport errors are not cached)."""

    name = "judge"

    def __init__(self, cfg: JudgeConfig, cache_dir: str | Path | None = None):
        self.cfg = cfg
        self.model = cfg.default_model()
        self.prompt_version = cfg.prompt_version
        self.cache = JudgementCache(Path(cache_dir) / "judgements.jsonl") if (cache_dir and cfg.cache) else None

    @abstractmethod
    def _judge(self, items: Sequence[LatentContexts]) -> list[Judgement]:
        """Verdicts for items not in the cache, in order."""

    def key(self, item: LatentContexts) -> str:
        return cache_key(item.latent, item.digest(), self.name, self.model, self.prompt_version)

    def judge(self, items: Sequence[LatentContexts]) -> list[Judgement]:
        out: dict[int, Judgement] = {}
        todo = []
        for item in items:
            hit = self.cache.get(self.key(item)) if self.cache else None
            if hit is not None:
                out[item.latent] = hit
            else:
                todo.append(item)
        if todo:
            log.info("judge %s (%s): %d latents to judge, %d cached", self.name, self.model, len(todo), len(out))
            for item, verdict in zip(todo, self._judge(todo)):
                verdict.judge, verdict.model, verdict.prompt_version = self.name, self.model, self.prompt_version
                out[item.latent] = verdict
                if self.cache and verdict.status != "error":
                    self.cache.put(self.key(item), verdict)
        return [out[item.latent] for item in items]


class NoJudge(Judge):
    """Selection by salience alone: every latent is marked `skipped`, and selection ignores the threshold."""

    name = "none"

    def _judge(self, items):
        return [Judgement(i.latent, None, "", "skipped") for i in items]
