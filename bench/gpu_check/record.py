"""The check's one JSON: read, merged into part by part, and rewritten atomically after every measurement;
and the small helpers its values go through (GiB, an error's first line, a process's peak resident memory)."""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

from .settings import started_at

GIB = 2**30
SCHEMA = 1
FINAL = ("ok", "failed", "timeout", "skipped")


def load(path: Path) -> dict:
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            bad = path.with_suffix(path.suffix + ".unreadable")
            path.replace(bad)  # keep it for a look, start a new one
    return {}


def save(path: Path, doc: dict) -> None:
    now = time.time()
    doc["schema"] = SCHEMA
    doc["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now))
    doc["total_wall_s"] = round(now - started_at(), 1)
    doc["errors"] = {name: part["error"] for name, part in doc.get("parts", {}).items() if part.get("error")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def update(path: Path, part: str, values: dict) -> dict:
    """Merge `values` into parts[part] and rewrite the JSON at once."""
    doc = load(path)
    doc.setdefault("parts", {}).setdefault(part, {}).update(values)
    save(path, doc)
    return doc


def first_line(err: BaseException | str, limit: int = 500) -> str:
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return (text.strip().splitlines() or [""])[0][:limit]


def gib(n: float | int | None) -> float | None:
    return None if n is None else round(n / GIB, 3)


def rss_peak_bytes(children: bool = False) -> int:
    """This process's (or its waited-for children's largest) resident-set high-water mark."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss * 1024  # kilobytes on Linux
