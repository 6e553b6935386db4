"""Small records shared by the feature stages (salience -> contexts -> judge -> selection) and the dashboard."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass
class Context:
    """One top activation of a latent: the activated token inside a window of surrounding text."""

    token: str
    """The activated token as text (as the tokenizer decodes it)."""
    activation: float
    """The latent's activation at that token."""
    left: str
    """Text of up to `window` tokens before the token (cut at the sequence start)."""
    right: str
    """Text of up to `window` tokens after the token (cut at the sequence end)."""
    pair_id: str = ""
    side: str = ""
    """"chosen" or "rejected"."""
    position: int = -1
    """Token position in the rendered sequence."""

    def marked(self, start: str = "<<", end: str = ">>") -> str:
        return f"{self.left}{start}{self.token}{end}{self.right}"


@dataclass
class LatentContexts:
    """What a judge reads about one latent."""

    latent: int
    contexts: list[Context]
    salience: float = 0.0
    n_distinct_tokens: int = 0

    def digest(self) -> str:
        """Hash of the contexts, part of the judgement cache key (new contexts -> new judgement)."""
        blob = json.dumps([asdict(c) for c in self.contexts], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


@dataclass
class Judgement:
    """A judge's verdict on one latent. `score` is None when the reply could not be parsed or the call failed."""

    latent: int
    score: float | None
    explanation: str = ""
    status: str = "ok"
    """"ok", "unparseable" (reply kept in `raw`), or "error" (call failed after retries)."""
    raw: str = ""
    judge: str = ""
    model: str = ""
    prompt_version: str = ""
    cached: bool = False
    extra: dict = field(default_factory=dict)
