"""The judge prompt (a versioned file), the rendering of a latent's contexts into it, and strict parsing of
the reply `Score: N` / `Explanation: ...` (an unparseable reply is recorded as such, never guessed)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from ...errors import ConfigError
from ..types import LatentContexts

_SCORE = re.compile(r"^\s*\**\s*score\s*\**\s*:\s*\**\s*([0-9]+(?:\.[0-9]+)?)\s*\**\s*$", re.IGNORECASE | re.MULTILINE)
_EXPL = re.compile(r"^\s*\**\s*explanation\s*\**\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE | re.DOTALL)


@cache
def system_prompt(version: str) -> str:
    try:
        return resources.files("safer_rm.prompts").joinpath(f"judge_{version}.txt").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError("judge.prompt_version", f"no prompt file prompts/judge_{version}.txt") from None


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."


def user_message(item: LatentContexts, max_contexts: int = 10) -> str:
    lines = [f"Feature {item.latent}. Top-activating contexts (token | activation | context):"]
    for i, c in enumerate(item.contexts[:max_contexts], 1):
        context = f"{_clip(c.left, 200)[-200:]}<<{c.token.strip()}>>{_clip(c.right, 200)}"
        lines.append(f"{i}. {c.token.strip()!r} | {c.activation:.2f} | {context}")
    return "\n".join(lines)


def parse_reply(text: str) -> tuple[float | None, str]:
    """(score, explanation); score None when the reply has no `Score: N` line with N an integer in 1-5."""
    found = _SCORE.findall(text or "")
    if len(found) != 1:
        return None, ""
    value = float(found[0])
    if not value.is_integer() or not 1 <= value <= 5:
        return None, ""
    m = _EXPL.search(text)
    return value, " ".join(m.group(1).split()) if m else ""
