"""The judge prompt (a versioned file), the rendering of a latent's contexts into it, and strict parsing of
the reply `Score: N` / `Explanation: ...` (an unparseable reply is recorded as such, never guessed)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from ...errors import ConfigError
from ...io import sha256_text
from ..types import Context, LatentContexts

PLACEHOLDER = "{contexts}"
_SECTION = re.compile(r"^\[(system|user)\]\s*$")
# one line `Score: N`, markdown bold around the label or the value tolerated, nothing else on the line
_SCORE = re.compile(r"^\s*(?:\*\*)?score(?:\*\*)?\s*:\s*(?:\*\*)?\s*(.*?)\s*(?:\*\*)?\s*$", re.IGNORECASE)
_EXPLANATION = re.compile(r"^\s*(?:\*\*)?explanation(?:\*\*)?\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Prompt:
    version: str
    """`v1` for the packaged prompts/judge_v1.txt; `<file stem>` for a user's file."""
    system: str
    user: str
    """User message template holding `{contexts}` once."""
    digest: str
    """Hash of the prompt text (part of the cache key, so an edited file never reuses old verdicts)."""

    def messages(self, item: LatentContexts, max_contexts: int, context_chars: int) -> list[dict[str, str]]:
        user = self.user.replace(PLACEHOLDER, render_contexts(item.contexts, max_contexts, context_chars))
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


def _parse_prompt(text: str, source: str, version: str) -> Prompt:
    sections: dict[str, list[str]] = {}
    current = None
    for line_no, line in enumerate(text.splitlines(), 1):
        m = _SECTION.match(line)
        if m:
            if m.group(1) in sections:
                raise ConfigError(
                    "judge.prompt_version", f"{source}:{line_no}: section [{m.group(1)}] repeated"
                )
            current = m.group(1)
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
        elif line.strip() and not line.lstrip().startswith("#"):
            raise ConfigError(
                "judge.prompt_version",
                f"{source}:{line_no}: text before the first [system] or "
                "[user] section (comments start with '#')",
            )
    user = "\n".join(sections.get("user", [])).strip()
    if user.count(PLACEHOLDER) != 1:
        raise ConfigError(
            "judge.prompt_version", f"{source}: the [user] section must hold {PLACEHOLDER} exactly once"
        )
    system = "\n".join(sections.get("system", [])).strip()
    digest = sha256_text(f"{system}\0{user}")[:12]
    return Prompt(version, system, user, digest)


@cache
def load_prompt(version: str) -> Prompt:
    """A packaged version (`v1` -> prompts/judge_v1.txt) or the path of a prompt file."""
    path = Path(version)
    if path.suffix and path.is_file():
        return _parse_prompt(path.read_text(encoding="utf-8"), str(path), path.stem)
    resource = resources.files("safer_rm").joinpath("prompts", f"judge_{version}.txt")
    if not resource.is_file():
        raise ConfigError(
            "judge.prompt_version", f"no prompt prompts/judge_{version}.txt and no file {version!r}"
        )
    return _parse_prompt(resource.read_text(encoding="utf-8"), f"prompts/judge_{version}.txt", version)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def shown_contexts(contexts: list[Context], max_contexts: int) -> list[Context]:
    """The contexts a judge sees: highest activation first (stable for ties), at most `max_contexts`."""
    return sorted(contexts, key=lambda c: -c.activation)[:max_contexts]


def context_text(c: Context, context_chars: int, start: str = "<<", end: str = ">>") -> str:
    """The window around the token on one line, `context_chars` characters kept on each side."""
    left, right = _one_line(c.left), _one_line(c.right)
    # keep the spacing that separated the token from its neighbours
    left = left + " " if c.left[-1:].isspace() or c.token[:1].isspace() else left
    right = " " + right if c.right[:1].isspace() or c.token[-1:].isspace() else right
    left = left if len(left) <= context_chars else "..." + left[-context_chars:]
    right = right if len(right) <= context_chars else right[:context_chars] + "..."
    return f"{left}{start}{c.token.strip()}{end}{right}".strip()


def render_contexts(contexts: list[Context], max_contexts: int, context_chars: int) -> str:
    lines = []
    for i, c in enumerate(shown_contexts(contexts, max_contexts), 1):
        token = _one_line(c.token) or repr(c.token)
        lines.append(f'{i}. "{token}" ({c.activation:.2f}) {context_text(c, context_chars)}')
    return "\n".join(lines) if lines else "(no contexts)"


@dataclass(frozen=True)
class Reply:
    score: int | None
    """The integer 1-5 of the one `Score: N` line; None when the reply breaks the format."""
    explanation: str = ""
    problem: str = ""
    """Why the reply is unparseable (empty when it parsed)."""


def parse_reply(text: str | None) -> Reply:
    """Strict: exactly one line `Score: N` with N an integer 1-5 (markdown bold tolerated); the explanation
    is the text after `Explanation:` (may be missing). Anything else is unparseable, never guessed."""
    lines = (text or "").splitlines()
    found = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _SCORE.match(line))]
    if not found:
        return Reply(None, problem="no 'Score: N' line")
    if len(found) > 1:
        return Reply(None, problem=f"{len(found)} 'Score:' lines")
    index, value = found[0]
    if not re.fullmatch(r"[0-9]+", value):
        return Reply(None, problem=f"score {value!r} is not an integer")
    score = int(value)
    if not 1 <= score <= 5:
        return Reply(None, problem=f"score {score} outside 1-5")
    explanation = ""
    for i, line in enumerate(lines):
        m = _EXPLANATION.match(line)
        if m and i != index:
            rest = [line[m.end() :], *(rest for j, rest in enumerate(lines[i + 1 :], i + 1) if j != index)]
            explanation = _one_line("\n".join(rest)).removesuffix("**").strip()
            break
    return Reply(score, explanation)
