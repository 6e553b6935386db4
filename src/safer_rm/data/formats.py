"""Preference-data formats: detection from a row's fields, and one parser per format that turns a raw row
into a `PreferencePair` or raises `RowProblem` with a reason and the field at fault. Formats whose rows are
single responses (`wildguardmix`) have no row parser: their pairs are formed across rows (`singles.py`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .records import ROLES, Message, PreferencePair, user_prompt

FORMATS = ("hh", "pku", "rewardbench", "messages", "generic", "wildguardmix")
PKU_PREFERENCES = ("safer", "better", "safe_vs_unsafe")


class RowProblem(Exception):
    """A row that cannot become a usable pair. `reason` is the counted category."""

    def __init__(self, reason: str, field: str | None = None, detail: str = ""):
        self.reason, self.field, self.detail = reason, field, detail
        super().__init__(f"{reason}{': ' + detail if detail else ''}")


def _get(row: dict, key: str, types: type | tuple = str) -> Any:
    if key not in row or row[key] is None:
        raise RowProblem("missing_field", key, f"no '{key}'")
    value = row[key]
    if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
        names = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        raise RowProblem("wrong_type", key, f"expected {names}, got {type(value).__name__}")
    return value


def _check_responses(chosen: str, rejected: str) -> None:
    if not chosen.strip():
        raise RowProblem("empty_response", "chosen", "chosen response is empty")
    if not rejected.strip():
        raise RowProblem("empty_response", "rejected", "rejected response is empty")
    if chosen.strip() == rejected.strip():
        raise RowProblem("identical_sides", "chosen", "chosen and rejected are identical")


def _messages(value: Any, field: str) -> list[Message]:
    if not isinstance(value, list):
        raise RowProblem("wrong_type", field, f"expected a message list, got {type(value).__name__}")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "content" not in m or "role" not in m:
            raise RowProblem("wrong_type", f"{field}.{i}", "a message needs 'role' and 'content'")
        role, content = m["role"], m["content"]
        role = {"human": "user", "gpt": "assistant", "bot": "assistant"}.get(role, role)
        if role not in ROLES or not isinstance(content, str):
            raise RowProblem("wrong_type", f"{field}.{i}", f"bad message (role {role!r})")
        out.append({"role": role, "content": content})
    return out


def _prompt(row: dict, key: str = "prompt") -> list[Message]:
    value = row.get(key)
    if value is None:
        raise RowProblem("missing_field", key, f"no '{key}'")
    if isinstance(value, str):
        return user_prompt(value)
    return _messages(value, key)


_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ ]?")


def split_hh_transcript(text: str) -> list[Message]:
    """`\\n\\nHuman: ...\\n\\nAssistant: ...` into messages (text before the first marker is dropped)."""
    parts = _HH_TURN.split(text)
    out = []
    for i in range(1, len(parts) - 1, 2):
        role = "user" if parts[i] == "Human" else "assistant"
        out.append({"role": role, "content": parts[i + 1].strip()})
    return out


def parse_hh(row: dict, **_: Any) -> PreferencePair:
    chosen, rejected = _get(row, "chosen"), _get(row, "rejected")
    marker = "\n\nAssistant:"
    ic, ir = chosen.rfind(marker), rejected.rfind(marker)
    if ic < 0:
        raise RowProblem("no_shared_prefix", "chosen", "no 'Assistant:' turn")
    if ir < 0:
        raise RowProblem("no_shared_prefix", "rejected", "no 'Assistant:' turn")
    if chosen[:ic] != rejected[:ir]:
        raise RowProblem(
            "no_shared_prefix", "rejected", "chosen and rejected differ before the last Assistant turn"
        )
    prompt = split_hh_transcript(chosen[:ic])
    if not prompt:
        raise RowProblem("missing_field", "chosen", "no 'Human:' turn before the last Assistant turn")
    c, r = chosen[ic + len(marker) :].strip(), rejected[ir + len(marker) :].strip()
    _check_responses(c, r)
    return PreferencePair("", prompt, c, r)


def parse_pku(row: dict, preference: str = "safer", **_: Any) -> PreferencePair:
    prompt = _prompt(row)
    r0, r1 = _get(row, "response_0"), _get(row, "response_1")
    responses = (r0, r1)
    if preference == "safe_vs_unsafe":
        s0, s1 = _get(row, "is_response_0_safe", bool), _get(row, "is_response_1_safe", bool)
        if s0 == s1:
            raise RowProblem(
                "no_safety_contrast", "is_response_0_safe", "both responses have the same safety label"
            )
        best = 0 if s0 else 1
    else:
        key = "safer_response_id" if preference == "safer" else "better_response_id"
        best = _get(row, key, int)
        if best not in (0, 1):
            raise RowProblem("wrong_type", key, f"expected 0 or 1, got {best}")
    c, r = responses[best], responses[1 - best]
    _check_responses(c, r)
    meta = {
        k: row[k]
        for k in ("is_response_0_safe", "is_response_1_safe", "safer_response_id", "better_response_id")
        if k in row
    }
    return PreferencePair("", prompt, c, r, meta=meta)


def _side(row: dict, key: str) -> str | list[Message]:
    value = row.get(key)
    if value is None:
        raise RowProblem("missing_field", key, f"no '{key}'")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _messages(value, key)
    raise RowProblem("wrong_type", key, f"expected a string or a message list, got {type(value).__name__}")


def parse_generic(row: dict, **_: Any) -> PreferencePair:
    """prompt/chosen/rejected strings; also RewardBench rows and prompt message lists."""
    prompt_key = "prompt" if "prompt" in row else "messages" if "messages" in row else "prompt"
    prompt = _prompt(row, prompt_key)
    c, r = _get(row, "chosen"), _get(row, "rejected")
    _check_responses(c, r)
    meta = {
        k: row[k] for k in ("subset", "category", "subcategory", "chosen_model", "rejected_model") if k in row
    }
    return PreferencePair("", prompt, c, r, meta=meta)


def parse_messages(row: dict, **_: Any) -> PreferencePair:
    """TRL conversational: chosen/rejected message lists, with the prompt either explicit (`prompt` or
    `messages`) or implicit (the shared prefix of the two lists)."""
    chosen, rejected = _side(row, "chosen"), _side(row, "rejected")
    explicit = "prompt" in row or "messages" in row
    prompt = _prompt(row, "prompt" if "prompt" in row else "messages") if explicit else []
    if isinstance(chosen, list) and isinstance(rejected, list):
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
            n += 1
        if not explicit:
            prompt = chosen[:n]
        elif chosen[:n] != prompt:  # sides that repeat the explicit prompt (UltraFeedback binarized) drop it
            n = 0
        chosen, rejected = chosen[n:], rejected[n:]
        for name, side in (("chosen", chosen), ("rejected", rejected)):
            if not side or side[-1]["role"] != "assistant":
                raise RowProblem("missing_field", name, "no final assistant message")
            if len(side) > 1:
                raise RowProblem("no_shared_prefix", name, "chosen and rejected differ before the last turn")
        chosen, rejected = chosen[-1]["content"], rejected[-1]["content"]
    elif isinstance(chosen, list) or isinstance(rejected, list):
        raise RowProblem(
            "wrong_type", "rejected", "chosen and rejected must both be strings or both message lists"
        )
    _check_responses(chosen, rejected)
    return PreferencePair("", prompt, chosen, rejected)


PARSERS: dict[str, Callable[..., PreferencePair]] = {
    "hh": parse_hh,
    "pku": parse_pku,
    "rewardbench": parse_generic,
    "messages": parse_messages,
    "generic": parse_generic,
}


def detect_format(row: Any) -> str | None:
    """The format a row's fields imply, or None."""
    if not isinstance(row, dict):
        return None
    keys = set(row)
    if {"prompt", "response"} <= keys and keys & {"response_harm_label", "response_refusal_label"}:
        return "wildguardmix"
    if {"response_0", "response_1"} <= keys:
        return "pku"
    if {"chosen", "rejected"} <= keys:
        if isinstance(row["chosen"], list) or isinstance(row.get("messages"), list):
            return "messages"
        if isinstance(row.get("prompt"), list):
            return "messages"
        if "prompt" in keys:
            return "rewardbench" if "subset" in keys else "generic"
        if isinstance(row["chosen"], str) and "Assistant:" in row["chosen"]:
            return "hh"
    return None


def describe_formats() -> str:
    return (
        "hh (chosen/rejected transcripts), pku (response_0/1 + *_response_id), rewardbench "
        "(prompt/chosen/rejected/subset), messages (TRL conversational lists), generic (prompt/chosen/rejected), wildguardmix (single "
        "prompt/response rows with response_harm_label / response_refusal_label, paired within a prompt)"
    )
