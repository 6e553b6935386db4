"""Judgements on disk, so that a rerun or a resumed run never asks (or pays) twice.

One append-only JSON-lines file; each record is written as one line, flushed and fsynced as soon as the
verdict arrives (under an advisory lock, so two processes sharing a cache do not interleave lines). A crash
mid-write leaves at most a torn last line, which reading skips with a warning and the next append closes
off. The key is a hash of (latent, contexts digest, judge, model, prompt version, settings digest); those
fields are stored in clear beside it. Only real answers are cached: `ok` and `unparseable` verdicts, never
transport errors (`error`), which are retried on the next run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO

from ...io import sha256_text
from ..types import Judgement

log = logging.getLogger(__name__)

CACHE_FILE = "judgements.jsonl"
CACHED_STATUSES = ("ok", "unparseable")
_FIELDS = {f.name for f in fields(Judgement)}

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: single-process use only
    fcntl = None


def cache_key(
    latent: int, digest: str, judge: str, model: str, prompt_version: str, settings: str = ""
) -> str:
    blob = json.dumps([int(latent), digest, judge, model, prompt_version, settings], ensure_ascii=False)
    return sha256_text(blob)[:32]


@contextlib.contextmanager
def _locked(fh: IO[bytes]) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class JudgementCache:
    """`get(key)` -> the stored verdict marked `cached=True`; `put(key, verdict, **fields)` appends it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        with open(self.path, "rb") as fh:
            for line_no, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw.decode("utf-8"))
                    key, verdict = row["key"], row["judgement"]
                    if (
                        not isinstance(key, str)
                        or not isinstance(verdict, dict)
                        or not set(verdict) <= _FIELDS
                    ):
                        raise TypeError("unexpected record shape")
                except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                    log.warning(
                        "%s:%d: unreadable cache record skipped (torn write from an interrupted run?)",
                        self.path,
                        line_no,
                    )
                    continue
                self.entries[key] = verdict

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> Judgement | None:
        row = self.entries.get(key)
        if row is None:
            return None
        return Judgement(**{**row, "cached": True, "extra": dict(row.get("extra") or {})})

    def put(self, key: str, judgement: Judgement, **meta: object) -> bool:
        """Append one verdict (returns False, writing nothing, for a status that is not cached)."""
        if judgement.status not in CACHED_STATUSES:
            return False
        row = {k: v for k, v in asdict(judgement).items() if k != "cached"}
        line = json.dumps(
            {"key": key, **meta, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "judgement": row},
            ensure_ascii=False,
            default=str,
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab+") as fh, _locked(fh):
                # a torn last line (crash mid-write) gets closed off so that this record stays readable
                end = fh.seek(0, os.SEEK_END)
                if end > 0:
                    fh.seek(end - 1)
                    if fh.read(1) != b"\n":
                        fh.write(b"\n")
                fh.write((line + "\n").encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            self.entries[key] = row
        return True
