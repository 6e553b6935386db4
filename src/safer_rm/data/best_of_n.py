"""Best-of-N rows: one prompt with several chosen and several rejected completions, in RewardBench 2's schema
(`id`, `prompt`, `chosen` list, `rejected` list, `num_correct`, `subset`, ...), read from a file, a dataset
folder in the hub's layout or a hub id (`allenai/reward-bench-2`, split `test`); rows that cannot be used are
counted by reason, as for pairs. For scoring, a row becomes pairs of its first completion against each other
one (`as_pairs`): every RewardBench 2 rule depends on differences of scores only, so these pairs' margins
determine a row's result, and the pair machinery (one pass, each distinct text scored once, prefix cache,
the causal test's splice) serves best-of-N rows unchanged."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .config import SourceConfig
from .formats import RowProblem, _prompt
from .load import iter_source_rows
from .quality import DropReport
from .readers import Location
from .records import Message, PreferencePair

TIES = "ties"
"""RewardBench 2's Ties subset (matched ignoring case, as the official code does), scored by its own rule."""
_TIES_ID = re.compile(r"^([^:]+):(\d+)$")


@dataclass
class BestOfNRow:
    """One prompt and its completions: every `chosen` one is correct, every `rejected` one is not."""

    id: str
    prompt: list[Message]
    chosen: list[str]
    rejected: list[str]
    subset: str
    meta: dict = field(default_factory=dict)

    @property
    def is_ties(self) -> bool:
        return self.subset.lower() == TIES

    def ties_key(self) -> tuple[str, int]:
        """(`ref` or `tied`, prompt number) of a Ties row, from its id `ref:12` / `tied:12`."""
        m = _TIES_ID.match(self.id)
        if m is None:
            raise ValueError(f"row {self.id}: a Ties id is '<ref|tied>:<number>'")
        return ("ref" if m.group(1) == "ref" else "tied"), int(m.group(2))


def _completions(row: dict, key: str, max_chars: int) -> list[str]:
    value = row.get(key)
    if value is None:
        raise RowProblem("missing_field", key, f"no '{key}'")
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise RowProblem("wrong_type", key, f"expected a list of completions, got {type(value).__name__}")
    if not value:
        raise RowProblem("no_completions", key, f"'{key}' is empty")
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise RowProblem("wrong_type", f"{key}.{i}", f"expected str, got {type(text).__name__}")
        if not text.strip():
            raise RowProblem("empty_response", f"{key}.{i}", "completion is empty")
        if len(text) > max_chars:
            raise RowProblem("too_long", f"{key}.{i}", f"over data.max_text_chars={max_chars} characters")
    return list(value)


def parse_best_of_n(row: Any, number: int, max_chars: int = 200_000) -> BestOfNRow:
    """A RewardBench 2 row as a `BestOfNRow`, or RowProblem naming the reason and the field."""
    if not isinstance(row, dict):
        raise RowProblem("wrong_type", None, f"row is a {type(row).__name__}, not an object")
    subset = row.get("subset")
    if not isinstance(subset, str) or not subset:
        raise RowProblem("missing_field", "subset", "no 'subset' (RewardBench 2 scores by subset)")
    chosen = _completions(row, "chosen", max_chars)
    rejected = _completions(row, "rejected", max_chars)
    num_correct = row.get("num_correct")
    if num_correct is not None and num_correct != len(chosen):
        raise RowProblem("num_correct_mismatch", "num_correct", f"{num_correct} but {len(chosen)} chosen")
    raw_id = row.get("id")
    out = BestOfNRow(
        id=str(raw_id) if isinstance(raw_id, str | int) and raw_id != "" else str(number),
        prompt=_prompt(row),
        chosen=chosen,
        rejected=rejected,
        subset=subset,
        meta={k: row[k] for k in ("models", "additional_metadata") if row.get(k) is not None},
    )
    if out.is_ties:
        if _TIES_ID.match(out.id) is None:
            raise RowProblem("ties_id", "id", f"a Ties row's id is '<ref|tied>:<number>', got {out.id!r}")
        if out.ties_key()[0] == "tied" and len(chosen) < 2:
            raise RowProblem("ties_one_correct", "chosen", "a tied Ties row needs at least 2 chosen")
    return out


def load_best_of_n(
    path: str,
    root: str,
    report: DropReport,
    split: str = "test",
    name: str = "rewardbench2",
    strict: bool = False,
    max_text_chars: int = 200_000,
) -> list[BestOfNRow]:
    """Every usable row of a file, dataset folder or hub id (`${root}` expanded); bad rows are counted in
    `report` under `name` by reason (with the first location of each), or raise when `strict`."""
    where, rows = iter_source_rows(SourceConfig(name=name, path=path, split=split), root)
    out: list[BestOfNRow] = []
    seen: set[str] = set()
    renamed = 0
    loc: Location | None = None
    for n, (row, loc) in enumerate(rows):
        report.read[name] += 1
        try:
            parsed = parse_best_of_n(row, n, max_text_chars)
            if parsed.id in seen and parsed.is_ties:  # the official code would merge the two into one prompt
                raise RowProblem("duplicate_id", "id", f"Ties id {parsed.id!r} seen before")
        except RowProblem as problem:
            if strict:
                raise loc.error(f"{problem.reason}: {problem.detail}", field=problem.field) from None
            report.drop(name, problem.reason, str(loc))
            continue
        if parsed.id in seen:  # scored as the official code does (ids unused), kept apart by its row number
            parsed.meta["row_id"], parsed.id = parsed.id, f"{parsed.id}@{n}"
            renamed += 1
        seen.add(parsed.id)
        parsed.meta["origin"] = str(loc)
        out.append(parsed)
    if loc is None:
        raise Location(where).error(f"best-of-N set '{name}' has no rows")
    if renamed:
        report.notes.append(f"{name}: {renamed} rows with an id seen before kept as <id>@<row number>")
    report.kept[name] += len(out)
    return out


def as_pairs(rows: list[BestOfNRow], source: str = "rewardbench2") -> list[PreferencePair]:
    """Each row's first completion (its first chosen) against each other completion, chosen ones first, in
    row order; `meta` holds the row's id, subset and number of chosen completions (`n_chosen`)."""
    pairs = []
    for row in rows:
        first, *others = row.chosen + row.rejected
        kind = "safety" if row.subset.lower() == "safety" else "chat"
        meta = {"subset": row.subset, "row": row.id, "n_chosen": len(row.chosen)}
        for j, other in enumerate(others, 1):
            pairs.append(
                PreferencePair(f"{source}:{row.id}/{j}", row.prompt, first, other, source, kind, dict(meta))
            )
    return pairs
