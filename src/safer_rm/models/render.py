"""Prompt + response -> token ids, through the tokenizer's chat template where it has one, plain text
otherwise. The whole rendered text is tokenised at once, as the model's own template would be, and split
where the response's first character is (a fast tokenizer's offsets), so a merge across the boundary (a
byte-level BPE joins the generation prompt's newline with a response's leading space into one token) gives
the ids that the model sees anywhere else. Truncation always keeps the end of the response: the prompt is cut
from the left first, then the response from its left. Every cut is reported, never hidden."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..data.records import Message, PreferencePair


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    response_start: int
    """Index in `input_ids` of the first response token (after truncation)."""
    prompt_cut: int
    """Prompt tokens removed from the left."""
    response_cut: int
    """Response tokens removed from the left (only when the response alone exceeds the budget)."""

    @property
    def truncated(self) -> bool:
        return bool(self.prompt_cut or self.response_cut)


def plain_prompt(prompt: Sequence[Message]) -> str:
    return "".join(
        f"{m['role'].capitalize() if m['role'] != 'user' else 'User'}: {m['content']}\n" for m in prompt
    )


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after a single text ([CLS] / [SEP], <s>, ...)."""
    body = tokenizer("safer probe", add_special_tokens=False)["input_ids"]
    full = tokenizer("safer probe", add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(body) + 1):
        if full[i : i + len(body)] == body:
            return list(full[:i]), list(full[i + len(body) :])
    return [], []


class Renderer:
    """Renders and tokenises (prompt, response) for one tokenizer, identically in every stage."""

    def __init__(
        self,
        tokenizer,
        max_length: int,
        template: str = "auto",
        system_prompt: str | None = None,
        min_prompt_tokens: int = 0,
    ):
        self.tok = tokenizer
        self.max_length = max_length
        self.min_prompt_tokens = min_prompt_tokens
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if template == "chat" and not has_template:
            from ..errors import ModelError

            raise ModelError("model.template=chat but the tokenizer has no chat template")
        self.chat = template == "chat" or (template == "auto" and has_template)
        self.system_prompt = system_prompt
        if not self.chat:
            self._lead, self._trail = special_tokens_around(tokenizer)

    @classmethod
    def from_settings(cls, tokenizer, settings: dict) -> Renderer:
        """Rebuild the renderer a reward model was trained with (its saved `settings()`)."""
        return cls(
            tokenizer,
            settings["max_length"],
            settings["template"],
            settings.get("system_prompt"),
            settings.get("min_prompt_tokens", 0),
        )

    @property
    def mode(self) -> str:
        return "chat" if self.chat else "plain"

    def _texts(self, prompt: Sequence[Message], response: str) -> tuple[str, str]:
        """(prefix, suffix) strings: prefix holds the prompt and the template up to the response."""
        if not self.chat:
            return plain_prompt(prompt) + "Assistant: ", response
        msgs = list(prompt)
        if self.system_prompt is not None and not (msgs and msgs[0]["role"] == "system"):
            msgs = [{"role": "system", "content": self.system_prompt}, *msgs]
        full = self.tok.apply_chat_template(
            msgs + [{"role": "assistant", "content": response}], tokenize=False
        )
        prefix = (
            self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) if msgs else ""
        )
        if not full.startswith(prefix):  # templates that rewrite earlier turns: split at the response
            at = full.rfind(response)
            prefix = full[:at] if at >= 0 else ""
        return prefix, full[len(prefix) :]

    def encode_many(self, items: Sequence[tuple[Sequence[Message], str]]) -> list[Encoded]:
        texts = [self._texts(p, r) for p, r in items]
        prefixes, suffixes = self._split_ids(texts)
        out = []
        for pre, suf in zip(prefixes, suffixes):
            if self.chat:
                lead, trail = [], []
            else:
                lead, trail = self._lead, self._trail
            budget = self.max_length - len(lead) - len(trail)
            reserve = min(self.min_prompt_tokens, len(pre))
            response_cut = max(0, len(suf) - (budget - reserve))
            suf = suf[response_cut:]
            keep = budget - len(suf)
            prompt_cut = max(0, len(pre) - keep)
            pre = pre[prompt_cut:]
            ids = [*lead, *pre, *suf, *trail]
            out.append(Encoded(ids, len(lead) + len(pre), prompt_cut, response_cut))
        return out

    def _split_ids(self, texts: Sequence[tuple[str, str]]) -> tuple[list[list[int]], list[list[int]]]:
        """(prefix ids, response ids) of every (prefix, suffix) text. A token that spans the boundary belongs
        to the response (it holds response characters); without offsets (a slow tokenizer) the two parts are
        tokenised separately."""
        if not texts:
            return [], []
        kw = {"add_special_tokens": False, "verbose": False}  # no "longer than the model max" warning: we cut
        if not getattr(self.tok, "is_fast", False):
            return (
                self.tok([t[0] for t in texts], **kw)["input_ids"],
                self.tok([t[1] for t in texts], **kw)["input_ids"],
            )
        enc = self.tok([a + b for a, b in texts], return_offsets_mapping=True, **kw)
        prefixes, suffixes = [], []
        for (prefix, _), ids, offsets in zip(texts, enc["input_ids"], enc["offset_mapping"]):
            cut = len(prefix)
            at = next((i for i, (_, end) in enumerate(offsets) if end > cut), len(ids))
            prefixes.append(ids[:at])
            suffixes.append(ids[at:])
        return prefixes, suffixes

    def encode(self, prompt: Sequence[Message], response: str) -> Encoded:
        return self.encode_many([(prompt, response)])[0]

    def encode_pairs(self, pairs: Sequence[PreferencePair]) -> tuple[list[Encoded], list[Encoded]]:
        """(chosen encodings, rejected encodings) in pair order."""
        enc = self.encode_many(
            [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
        )
        return enc[: len(pairs)], enc[len(pairs) :]

    def settings(self) -> dict:
        return {
            "max_length": self.max_length,
            "template": self.mode,
            "system_prompt": self.system_prompt,
            "min_prompt_tokens": self.min_prompt_tokens,
        }


def truncation_counts(chosen: Sequence[Encoded], rejected: Sequence[Encoded]) -> dict[str, int]:
    """Pairs whose prompt or response was cut on either side (counted, never dropped)."""
    return {
        "pairs": len(chosen),
        "prompt_truncated": sum(1 for c, r in zip(chosen, rejected) if c.prompt_cut or r.prompt_cut),
        "response_truncated": sum(1 for c, r in zip(chosen, rejected) if c.response_cut or r.response_cut),
    }
