"""Judgements on disk, keyed by latent, contexts digest, judge, model and prompt version: a rerun or a
resumed run never asks (or pays) twice. Append-only JSON lines, each flushed and fsynced; a torn last line
from a crash is ignored on reading."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from ..types import Judgement

log = logging.getLogger(__name__)


def cache_key(latent: int, digest: str, judge: str, model: str, prompt_version: str) -> str:
    return f"{judge}|{model}|{prompt_version}|{latent}|{digest}"


class JudgementCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as fh:
                for line_no, line in enumerate(fh, 1):
                    try:
                        row = json.loads(line)
                        self.entries[row["key"]] = row["judgement"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        log.warning("%s:%d: unreadable cache line skipped (interrupted write?)", self.path, line_no)

    def get(self, key: str) -> Judgement | None:
        row = self.entries.get(key)
        return Judgement(**{**row, "cached": True}) if row else None

    def put(self, key: str, judgement: Judgement) -> None:
        row = {k: v for k, v in asdict(judgement).items() if k != "cached"}
        self.entries[key] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": key, "judgement": row}, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
