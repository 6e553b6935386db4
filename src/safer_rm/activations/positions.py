"""Position policies: which token positions of a rendered (prompt, response) sequence yield SAE vectors.

- `sentence_end` (the reference's): within the response, the last token of every run of sentence-ending
  punctuation or newline (`. , ? ! ;` and `\\n`), skipping a run end closer than `min_gap` tokens to the
  previously kept one. A response without any such run keeps its last token, so every response has at
  least one position. Decided from token strings, so it works with any tokenizer (BPE, WordPiece,
  SentencePiece); no tokenizer-specific ids.
- `all`: every real token (prompt, template and response); pads never enter.
- `response`: the response tokens only.
- `last`: the last real token of the sequence.

The reference marks positions after the whole text has been split into word chunks; here the rule is
applied to the response region, since the per-pair score is a mean over response positions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

POLICIES = ("sentence_end", "all", "response", "last")
_MARK_END = re.compile(r"[.,?!;\n][ \t\u00a0]*$")
_PUNCT_ONLY = re.compile(r"^[\s.,?!;]*$")


class TokenTexts:
    """Decoded text of single token ids, memoised per tokenizer."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self._decode = lru_cache(maxsize=200_000)(self._decode_uncached)

    def _decode_uncached(self, token_id: int) -> str:
        text = self.tok.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if "\ufffd" in text:  # a byte-level piece of a multi-byte character
            piece = self.tok.convert_ids_to_tokens(token_id)
            text = piece.replace("\u0120", " ").replace("\u010a", "\n").replace("\u2581", " ")
        return text

    def __call__(self, token_id: int) -> str:
        return self._decode(int(token_id))

    def is_mark(self, token_id: int) -> bool:
        """Does the token end a sentence-like span (ends in punctuation or a newline)?"""
        if token_id in self.special:
            return False
        return bool(_MARK_END.search(self(token_id)))

    def is_punctuation(self, token_id: int) -> bool:
        text = self(token_id)
        return bool(text) and bool(_PUNCT_ONLY.match(text)) and token_id not in self.special


def response_span(ids: Sequence[int], response_start: int, texts: TokenTexts) -> tuple[int, int]:
    """[start, end) of the response tokens, excluding trailing special tokens ([SEP], <|im_end|>, ...)."""
    end = len(ids)
    while end > response_start:
        if ids[end - 1] in texts.special:
            end -= 1
        elif (
            end - 2 >= response_start and ids[end - 2] in texts.special and texts(ids[end - 1]).strip() == ""
        ):
            end -= 1  # chat templates close a turn with a special token and a newline
        else:
            break
    return response_start, end


def sentence_end_positions(
    ids: Sequence[int], start: int, end: int, texts: TokenTexts, min_gap: int = 5
) -> list[int]:
    kept: list[int] = []
    i = start
    while i < end:
        if texts.is_mark(ids[i]):
            j = i
            # a run: consecutive mark tokens, possibly with punctuation/whitespace-only tokens between them
            while j + 1 < end and (texts.is_mark(ids[j + 1]) or texts.is_punctuation(ids[j + 1])):
                j += 1
            while j > i and not texts.is_mark(ids[j]):
                j -= 1
            if not kept or j - kept[-1] >= min_gap:
                kept.append(j)
            i = j + 1
        else:
            i += 1
    if not kept and end > start:
        kept.append(end - 1)
    return kept


def select_positions(
    policy: str, ids: Sequence[int], response_start: int, texts: TokenTexts, min_gap: int = 5
) -> list[int]:
    """Positions (indices into `ids`, which holds no pads) that the policy keeps."""
    if policy == "all":
        return list(range(len(ids)))
    if policy == "last":
        return [len(ids) - 1] if ids else []
    start, end = response_span(ids, response_start, texts)
    if policy == "response":
        return list(range(start, end))
    if policy == "sentence_end":
        return sentence_end_positions(ids, start, end, texts, min_gap)
    raise ValueError(f"unknown position policy {policy!r}; expected one of {', '.join(POLICIES)}")
