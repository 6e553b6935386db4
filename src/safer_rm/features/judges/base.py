"""One interface for every judge, with the disk cache in front of it."""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from tqdm.auto import tqdm

from ...io import quiet, sha256_text
from ..types import Judgement, LatentContexts
from .cache import CACHE_FILE, JudgementCache, cache_key
from .config import JudgeConfig
from .fingerprint import judge_fingerprint

log = logging.getLogger(__name__)


class Judge(ABC):
    """Scores latents 1-5 for safety relevance from their contexts (docs/method.md §4).

    `judge(items)` returns one `Judgement` per item, in order. With a cache, known verdicts come back with
    `cached=True` and every new `ok` or `unparseable` verdict is written as soon as it arrives (a crash
    loses nothing already answered); `error` verdicts are not cached. Subclasses implement `_judge_iter`.
    """

    name: ClassVar[str] = "judge"
    cacheable: ClassVar[bool] = True
    """False where the verdict costs nothing and its source can change under the same key (labels, none)."""

    def __init__(self, cfg: JudgeConfig, cache_dir: str | Path | None = None, progress: bool = True):
        cfg.check()
        self.cfg = cfg
        self.model = cfg.default_model()
        self.prompt_version = cfg.prompt_version
        self.progress = progress
        self.cache: JudgementCache | None = None
        if cache_dir is not None and cfg.cache and self.cacheable:
            self.cache = JudgementCache(Path(cache_dir) / CACHE_FILE)

    def settings_digest(self) -> str:
        """Digest of the settings that change verdicts (`judge_fingerprint`); part of every cache key."""
        blob = json.dumps(judge_fingerprint(self.cfg), sort_keys=True, ensure_ascii=False, default=str)
        return sha256_text(blob)[:12]

    def key(self, item: LatentContexts, settings: str) -> str:
        return cache_key(item.latent, item.digest(), self.name, self.model, self.prompt_version, settings)

    @abstractmethod
    def _judge_iter(self, items: Sequence[LatentContexts]) -> Iterator[tuple[int, Judgement]]:
        """Yield (index into `items`, verdict) for every item, in any order (as verdicts arrive)."""

    def judge(self, items: Sequence[LatentContexts]) -> list[Judgement]:
        items = list(items)
        out: list[Judgement | None] = [None] * len(items)
        settings = self.settings_digest()
        keys = [self.key(item, settings) for item in items] if self.cache is not None else []
        todo = []
        for i in range(len(items)):
            hit = self.cache.get(keys[i]) if self.cache is not None else None
            if hit is not None:
                out[i] = hit
            else:
                todo.append(i)
        if self.cache is not None:
            log.info(
                "judge %s (%s, prompt %s): %d latents, %d from the cache %s",
                self.name,
                self.model,
                self.prompt_version,
                len(items),
                len(items) - len(todo),
                self.cache.path,
            )
        if todo:
            bar = tqdm(
                total=len(todo),
                desc=f"judge {self.name}",
                unit="latent",
                leave=False,
                disable=quiet(self.progress) or len(todo) < 2,
            )
            with bar:
                for j, verdict in self._judge_iter([items[i] for i in todo]):
                    i = todo[j]
                    verdict.latent = items[i].latent
                    verdict.judge, verdict.model, verdict.prompt_version = (
                        self.name,
                        self.model,
                        self.prompt_version,
                    )
                    verdict.cached = False
                    if self.cache is not None:
                        self.cache.put(
                            keys[i],
                            verdict,
                            latent=items[i].latent,
                            digest=items[i].digest(),
                            judge=self.name,
                            model=self.model,
                            prompt_version=self.prompt_version,
                            settings=settings,
                        )
                    out[i] = verdict
                    bar.update(1)
        missing = [items[i].latent for i, v in enumerate(out) if v is None]
        if missing:
            raise RuntimeError(f"judge {self.name} returned no verdict for latents {missing[:10]}")
        statuses: dict[str, int] = {}
        for v in out:
            statuses[v.status] = statuses.get(v.status, 0) + 1
        log.info("judge %s: %s", self.name, ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
        return out  # type: ignore[return-value]


class NoJudge(Judge):
    """Selection by salience alone. Every latent gets `score=None, status="skipped"`; selection treats a
    `none` judge as no judge at all and ignores its threshold (`select_features(..., use_judge=False)`)."""

    name = "none"
    cacheable = False

    def __init__(self, cfg: JudgeConfig, cache_dir: str | Path | None = None, progress: bool = True):
        super().__init__(cfg, cache_dir, progress)
        self.prompt_version = ""

    def _judge_iter(self, items: Sequence[LatentContexts]) -> Iterator[tuple[int, Judgement]]:
        for i, item in enumerate(items):
            yield i, Judgement(item.latent, None, "not judged: selection by salience alone", status="skipped")
