"""The Hugging Face dataset card of an exported preference set (`curation.export`): its YAML header
(configs, features, size category) and what was done to the data (sources, edits, counts, columns)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import pyarrow as pa
import yaml

from .. import __version__
from ..data.records import PreferencePair
from .detectors import DEFINITIONS
from .export_rows import _DTYPES, JSONL_FILE, MESSAGE, META_COLUMN, PARQUET_FILE, RESERVED

METHODS = {
    "safer": "the SAFER pair score (the reward model's safety features, read through a sparse autoencoder)",
    "random": "a seeded random choice",
    "reward_margin": "the clean reward model's own margin r(chosen) - r(rejected)",
    **{name: text for name, text in DEFINITIONS.items() if name != "safer"},
}
"""What each selection method (`curation.edits`) or detector (`curation.detectors`) is, for the card; other
names are shown as they are."""


class Card(TypedDict, total=False):
    """What the dataset card says beyond what the pairs and edit records show (every key optional)."""

    title: str
    """The card's title and `pretty_name`."""
    summary: str
    """A paragraph on what the set is."""
    sources: Mapping[str, str]
    """Source name -> where it was read from (hub id or path)."""
    ratio: float
    """The edit ratio asked for, in percent of the set before editing."""
    settings: Mapping[str, Any]
    """Other settings of the edit (scope, seed, ...), listed as they are."""
    license: str
    date: str
    """ISO date of the export (default: today, UTC)."""


def _features(schema: pa.Schema) -> list[dict]:
    """The Hugging Face card form of the schema's features."""
    out: list[dict] = []
    for f in schema:
        if f.type == pa.list_(MESSAGE):
            out.append(
                {"name": f.name, "list": [{"name": n, "dtype": "string"} for n in ("role", "content")]}
            )
        else:
            out.append({"name": f.name, "dtype": _DTYPES[f.type]})
    return out


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return name
    return "100K<n<1M" if n < 1_000_000 else "1M<n<10M" if n < 10_000_000 else "n>10M"


def _header(card: Card, schema: pa.Schema, n: int) -> dict:
    header: dict[str, Any] = {"pretty_name": card.get("title", "safer-rm preference pairs")}
    if card.get("license"):
        header["license"] = card["license"]
    return header | {
        "tags": ["safer-rm", "preference", "reward-modeling", "rlhf"],
        "size_categories": [_size_category(n)],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": PARQUET_FILE}]}],
        "dataset_info": {"features": _features(schema)},
    }


def _edit_lines(card: Card, records: Sequence[Mapping[str, Any]], before: int) -> list[str]:
    if not records:
        return ["No pair was flipped or removed (the edit records are empty)."]
    groups = Counter((r["action"], r.get("method") or "unknown") for r in records)
    lines = []
    for (action, method), n in sorted(groups.items()):
        what = "chosen and rejected swapped (flipped)" if action == "flip" else "removed"
        how = METHODS.get(method, method)
        share = f"{100.0 * n / before:.2f}%" if before else "n/a"
        lines.append(f"- {n} pairs {what} ({share} of {before}), selected by `{method}`: {how}.")
    if "ratio" in card:
        lines.append(f"- Ratio asked for: {float(card['ratio']):g}% of the set before editing.")
    lines.append(
        "- Per row: `flipped`, and for flipped rows `edit_method`, `edit_rank` (1 = selected first) and "
        "`edit_score` (the method's value for the pair; null for random selection). Removed pairs are absent."
    )
    return lines


def _counts_table(counts: Mapping[str, Mapping[str, int]]) -> list[str]:
    cols = ("before", "after", "flipped", "removed")
    lines = ["| source | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    total: Counter[str] = Counter()
    for name, c in counts.items():
        lines.append(f"| {name} | " + " | ".join(str(c[k]) for k in cols) + " |")
        total.update(c)
    return [*lines, "| **total** | " + " | ".join(str(total[k]) for k in cols) + " |"]


def _columns_lines(schema: pa.Schema, meta_keys: Sequence[str]) -> list[str]:
    flat = [f"`{c}`" for c in schema.names if c not in RESERVED]
    rest = [f"`{k}`" for k in meta_keys]
    return [
        f"- `{PARQUET_FILE}` (`load_dataset(folder)` reads it) and `{JSONL_FILE}`: the same rows. For a "
        "large JSON file pass `features=` (the Parquet's): `datasets`' JSON reader fixes the types from "
        "the first 10 MB.",
        "- `id`, `prompt` (a list of `{role, content}` messages), `chosen`, `rejected`, `source`, `kind` "
        "(`safety` or `chat`).",
        f"- Fields every original row has, one column each: {', '.join(flat) or 'none'}.",
        f"- `{META_COLUMN}`: the other original fields as a JSON object in a string "
        f"({', '.join(rest) or 'none'}).",
    ]


def _card_text(
    card: Card,
    schema: pa.Schema,
    pairs: Sequence[PreferencePair],
    counts: Mapping[str, Mapping[str, int]],
    records: Sequence[Mapping[str, Any]] | None,
) -> str:
    title = card.get("title", "safer-rm preference pairs")
    where = card.get("sources") or {}
    lines = [f"# {title}", "", *([card["summary"], ""] if card.get("summary") else []), "## Sources", ""]
    lines += [f"- `{s}`: {where.get(s, 'origin not recorded')}" for s in sorted(set(counts) | set(where))]
    lines += ["", "## Edits", ""]
    before = sum(c["before"] for c in counts.values())
    lines += ["Not an edited set."] if records is None else _edit_lines(card, records, before)
    if card.get("settings"):
        lines += ["", "Settings: " + ", ".join(f"`{k}` = `{v}`" for k, v in card["settings"].items())]
    lines += ["", "## Counts per source", "", *_counts_table(counts), "", "## Files and columns", ""]
    flat = set(schema.names) - RESERVED
    meta_keys = sorted({str(k) for p in pairs for k in p.meta if k not in flat})
    lines += _columns_lines(schema, meta_keys)
    date = card.get("date") or dt.datetime.now(dt.UTC).date().isoformat()
    lines += ["", f"Written by safer-rm {__version__} on {date}.", ""]
    header = yaml.safe_dump(_header(card, schema, len(pairs)), sort_keys=False, allow_unicode=True)
    return f"---\n{header}---\n\n" + "\n".join(lines)
