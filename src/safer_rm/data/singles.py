"""Preference pairs formed from single labelled responses (WildGuardMix schema): rows are read, checked and
grouped by normalised prompt, and pairs are formed within each group. A dataset-level step, because no one
row is a pair.

A row has `prompt` (text or a message list), `response`, `prompt_harm_label` ("harmful" / "unharmful"),
`response_harm_label` ("harmful" / "unharmful") and `response_refusal_label` ("refusal" / "compliance");
other fields (`adversarial`, `subcategory`, ...) are kept in the pair's meta. Labels are compared after
stripping and lower-casing.

Pairing rule. Within a prompt group, response A is chosen over response B (A != B as text) when
  1. `harm`: A is unharmful and B is harmful (whatever the refusal and prompt labels); else, when both
     are unharmful and both rows give the prompt the same harm label,
  2. `refusal`: the prompt is harmful, A is a refusal and B a compliance (refuse what should be refused);
  3. `over_refusal`: the prompt is unharmful, A is a compliance and B a refusal (CoCoNot-like: answer what
     is safe to answer).
Two harmful responses are never ranked against each other. A pair's prompt is its chosen row's.

Which pairs. The candidates of a group are the (chosen, rejected) combinations the rule ranks, in input
order (chosen row, then rejected row). With `max_pairs_per_prompt` = k (default 3, None for all), at most k
are taken: repeatedly the first candidate that uses the most rows not yet in a pair, so the cap spends its
pairs on different responses; the taken pairs keep the candidate order. Groups come in order of their first
row. Nothing is random: the same input gives the same pairs and ids.

Ids are `<source>:<chosen>+<rejected>`, each side the row's `id` field when every usable row has a distinct
one, else its row number (0-based, as for the other formats).

Counted, never silent (reason in the drop report, one per row not used in any pair):
  - row-level (the row is unusable; raised with file, line and field under `data.strict`, except the
    `EXPECTED` ones that the format itself holds): `no_response` (null, absent or blank response: the
    prompt-only rows of WildGuardMix, counted even under `strict`), `missing_label` (a label null or
    absent), `bad_label` (a label outside its two values), `missing_field` (no or empty prompt),
    `wrong_type`, `too_long`, `duplicate_response` (the same response text as an earlier row of its prompt);
  - group-level (the row is fine but not in a pair): `lone_response` (the only usable response to its
    prompt), `no_safety_contrast` (the rule ranks it against no other response of its prompt, e.g. a
    prompt with only harmful responses), `over_pair_cap` (it had partners but the cap took other pairs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .formats import RowProblem, _prompt
from .quality import DropReport
from .readers import Location
from .records import Message, PreferencePair

SINGLE_FORMATS = ("wildguardmix",)
LABELS = {
    "prompt_harm_label": ("harmful", "unharmful"),
    "response_harm_label": ("harmful", "unharmful"),
    "response_refusal_label": ("refusal", "compliance"),
}
DEFAULT_MAX_PAIRS_PER_PROMPT = 3


EXPECTED = ("no_response",)
"""Row problems the format holds by design (WildGuardMix has prompt-only rows): counted, never raised."""


@dataclass
class Single:
    """One usable labelled response."""

    index: int
    loc: Location
    row: dict
    prompt: list[Message]
    key: str
    response: str
    text: str
    """`response` stripped: what duplicates and identical sides are judged by."""
    prompt_harmful: bool
    harmful: bool
    refusal: bool


def prompt_key(prompt: list[Message]) -> str:
    """The same normalisation as `PreferencePair.prompt_key`: non-system text, whitespace collapsed, lower."""
    text = " ".join(m["content"] for m in prompt if m["role"] != "system")
    return re.sub(r"\s+", " ", text).strip().lower()


def _label(row: dict, key: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowProblem("missing_label", key, f"no '{key}'")
    if not isinstance(value, str):
        raise RowProblem("wrong_type", key, f"expected str, got {type(value).__name__}")
    value = value.strip().lower()
    if value not in LABELS[key]:
        raise RowProblem("bad_label", key, f"expected {' or '.join(LABELS[key])}, got {row[key]!r}")
    return value


def parse_single(row: Any, index: int, loc: Location, max_text_chars: int) -> Single:
    """A row as a `Single`, or `RowProblem` with the reason and the field at fault."""
    if not isinstance(row, dict):
        raise RowProblem("wrong_type", None, f"row is a {type(row).__name__}, not an object")
    prompt = _prompt(row)
    if not prompt or not prompt_key(prompt):
        raise RowProblem("missing_field", "prompt", "prompt is empty")
    response = row.get("response")
    if response is None or (isinstance(response, str) and not response.strip()):
        raise RowProblem("no_response", "response", "no response (null, absent or blank)")
    if not isinstance(response, str):
        raise RowProblem("wrong_type", "response", f"expected str, got {type(response).__name__}")
    labels = {key: _label(row, key) for key in LABELS}
    if len(response) > max_text_chars:
        raise RowProblem("too_long", "response", f"over data.max_text_chars={max_text_chars} characters")
    if sum(len(m["content"]) for m in prompt) > max_text_chars:
        raise RowProblem("too_long", "prompt", f"over data.max_text_chars={max_text_chars} characters")
    return Single(
        index,
        loc,
        row,
        prompt,
        prompt_key(prompt),
        response,
        response.strip(),
        labels["prompt_harm_label"] == "harmful",
        labels["response_harm_label"] == "harmful",
        labels["response_refusal_label"] == "refusal",
    )


def rank(a: Single, b: Single) -> str | None:
    """The rule by which `a` is chosen over `b`, or None (see the module docstring)."""
    if a.text == b.text:
        return None
    if not a.harmful and b.harmful:
        return "harm"
    if a.harmful or b.harmful or a.prompt_harmful != b.prompt_harmful:
        return None
    if a.prompt_harmful and a.refusal and not b.refusal:
        return "refusal"
    if not a.prompt_harmful and not a.refusal and b.refusal:
        return "over_refusal"
    return None


def _take(candidates: list[tuple[int, int, str]], cap: int | None) -> list[tuple[int, int, str]]:
    if cap is None or len(candidates) <= cap:
        return candidates
    used: set[int] = set()
    left = list(range(len(candidates)))
    taken = []
    while left and len(taken) < cap:
        best = max(left, key=lambda k: (sum(i not in used for i in candidates[k][:2]), -k))
        left.remove(best)
        taken.append(best)
        used.update(candidates[best][:2])
    return [candidates[k] for k in sorted(taken)]


def form_pairs(
    singles: list[Single], max_per_prompt: int | None = DEFAULT_MAX_PAIRS_PER_PROMPT
) -> tuple[list[tuple[Single, Single, str]], dict[int, str]]:
    """(chosen, rejected, rule) triples and, for every single in no pair, the reason by its index."""
    groups: dict[str, list[Single]] = {}
    for s in singles:
        groups.setdefault(s.key, []).append(s)
    pairs: list[tuple[Single, Single, str]] = []
    unused: dict[int, str] = {}
    for group in groups.values():
        candidates = [
            (i, j, rule)
            for i, a in enumerate(group)
            for j, b in enumerate(group)
            if i != j and (rule := rank(a, b))
        ]
        taken = _take(candidates, max_per_prompt)
        pairs.extend((group[i], group[j], rule) for i, j, rule in taken)
        in_pair = {i for c in taken for i in c[:2]}
        ranked = {i for c in candidates for i in c[:2]}
        for i, s in enumerate(group):
            if i in in_pair:
                continue
            if len(group) == 1:
                unused[s.index] = "lone_response"
            else:
                unused[s.index] = "over_pair_cap" if i in ranked else "no_safety_contrast"
    return pairs, unused


def _row_ids(singles: list[Single]) -> dict[int, str]:
    values = [s.row.get("id") for s in singles]
    if all(isinstance(v, str | int) and v != "" for v in values) and len(set(map(str, values))) == len(
        values
    ):
        return {s.index: str(v) for s, v in zip(singles, values)}
    return {s.index: str(s.index) for s in singles}


def load_singles(
    name: str,
    kind: str,
    rows: Iterable[tuple[Any, Location]],
    report: DropReport,
    strict: bool = False,
    max_text_chars: int = 200_000,
    max_per_prompt: int | None = DEFAULT_MAX_PAIRS_PER_PROMPT,
) -> list[PreferencePair]:
    """The pairs formed from a source of single labelled responses; every row in no pair is counted."""
    singles: list[Single] = []
    seen: set[tuple[str, str]] = set()
    n = 0
    for index, (row, loc) in enumerate(rows):
        n += 1
        report.read[name] += 1
        try:
            single = parse_single(row, index, loc, max_text_chars)
            if (single.key, single.text) in seen:
                raise RowProblem("duplicate_response", "response", "same response as an earlier row")
        except RowProblem as problem:
            if strict and problem.reason not in EXPECTED:
                raise loc.error(f"{problem.reason}: {problem.detail}", field=problem.field) from None
            report.drop(name, problem.reason, str(loc))
            continue
        seen.add((single.key, single.text))
        singles.append(single)
    formed, unused = form_pairs(singles, max_per_prompt)
    for s in singles:
        if s.index in unused:
            report.drop(name, unused[s.index], str(s.loc))
    ids = _row_ids(singles)
    pairs = []
    for c, r, rule in formed:
        meta = {"rule": rule, "chosen_row": c.row, "rejected_row": r.row, "origin": f"{c.loc} > {r.loc}"}
        for key in ("subcategory", "adversarial"):
            if key in c.row:
                meta[key] = c.row[key]
        pair_id = f"{name}:{ids[c.index]}+{ids[r.index]}"
        pairs.append(PreferencePair(pair_id, c.prompt, c.response, r.response, name, kind, meta))
    report.kept[name] += len(pairs)
    cap = "all" if max_per_prompt is None else max_per_prompt
    report.notes.append(
        f"{name}: {len(singles) - len(unused)} of {n} rows formed {len(pairs)} pairs "
        f"(single labelled responses paired within a prompt, at most {cap} per prompt)"
    )
    return pairs
