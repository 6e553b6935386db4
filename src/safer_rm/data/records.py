"""The one record type of the project: a preference pair, and its normalised file form."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..io import atomic_path

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


@dataclass
class PreferencePair:
    """One preference judgement: for `prompt` (a message list, multi-turn kept), `chosen` is preferred
    over `rejected`. `source` names the dataset it came from, `kind` is "safety" or "chat"."""

    id: str
    prompt: list[Message]
    chosen: str
    rejected: str
    source: str = ""
    kind: str = ""
    meta: dict = field(default_factory=dict)

    def prompt_text(self) -> str:
        """The prompt as readable text (plain-text rendering and display)."""
        if len(self.prompt) == 1 and self.prompt[0]["role"] == "user":
            return self.prompt[0]["content"]
        return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in self.prompt)

    def prompt_key(self) -> str:
        """Normalised prompt identity, used to keep train and test prompt-disjoint."""
        text = " ".join(m["content"] for m in self.prompt if m["role"] != "system")
        return re.sub(r"\s+", " ", text).strip().lower()

    def swapped(self, reason: str = "") -> PreferencePair:
        meta = dict(self.meta)
        meta["flipped"] = reason or True
        return dataclasses.replace(self, chosen=self.rejected, rejected=self.chosen, meta=meta)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, row: dict) -> PreferencePair:
        return cls(
            id=str(row["id"]),
            prompt=[{"role": m["role"], "content": m["content"]} for m in row["prompt"]],
            chosen=row["chosen"],
            rejected=row["rejected"],
            source=row.get("source", ""),
            kind=row.get("kind", ""),
            meta=row.get("meta") or {},
        )


def user_prompt(text: str) -> list[Message]:
    return [{"role": "user", "content": text}] if text else []


def write_pairs(path: str | os.PathLike, pairs: Iterable[PreferencePair]) -> int:
    """Write pairs as JSON lines, atomically. Returns the number written."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n


def iter_pairs(path: str | os.PathLike) -> Iterator[PreferencePair]:
    """Read a file written by `write_pairs` (the run directory's normalised form)."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield PreferencePair.from_json(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise DataError(str(path), f"not a normalised pair ({err})", line=line_no) from None


def read_pairs(path: str | os.PathLike) -> list[PreferencePair]:
    return list(iter_pairs(path))
