"""Preference sets as files other tools read: Parquet, JSON lines and a Hugging Face dataset card, in one
folder that `datasets.load_dataset(folder)` loads (its card names the file), independent of any run folder.
In the folder:

    train.parquet   the rows; the card's one configuration (`load_dataset(folder)` reads it)
    export.jsonl    the same rows as JSON lines (`load_dataset("json", data_files=...)`)
    README.md       the dataset card: YAML header (configs, features) and what was done to the data

Columns: id, prompt (the message list), chosen, rejected, source, kind; for an edited set (`records` given)
flipped, edit_method, edit_rank, edit_score; then the pairs' meta. A meta key becomes its own column when
every pair has it with a value of one type (str, bool, int within int64, or finite float) and its name is not
one of the columns above; every other key is kept in `meta`, a JSON object as a string (`{}` when none; a
value JSON cannot hold, such as a datetime from a Parquet source, is written as its text). So
the flat columns never hold a null, and a mix of sources whose meta keys differ loads into one schema with
either reader: `datasets`' JSON reader fixes the types from the first 10 MB of a file and fails on a column
that was all null there and has values later. Only the edit columns can be null (edit_* on rows not flipped);
for a large JSON file pass `features=` (the Parquet's; the card lists them too).

The inputs are never modified; every file is written atomically. The run's own `train.jsonl` (its normalised
form, which the stages read) is `write_pairs`'s and never touched here.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from .. import __version__
from ..data.records import PreferencePair
from ..io import atomic_path, write_jsonl, write_text
from .detectors import DEFINITIONS

PARQUET_FILE = "train.parquet"
JSONL_FILE = "export.jsonl"
CARD_FILE = "README.md"
CORE_COLUMNS = ("id", "prompt", "chosen", "rejected", "source", "kind")
EDIT_COLUMNS = ("flipped", "edit_method", "edit_rank", "edit_score")
META_COLUMN = "meta"
RESERVED = frozenset((*CORE_COLUMNS, *EDIT_COLUMNS, META_COLUMN))

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
_SCALARS: dict[type, pa.DataType] = {
    str: pa.string(),
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
}
_DTYPES = {pa.string(): "string", pa.bool_(): "bool", pa.int64(): "int64", pa.float64(): "float64"}

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


@dataclass(frozen=True)
class Exported:
    """What `export_pairs` wrote."""

    paths: dict[str, Path]
    """"parquet", "jsonl", "card" -> file."""
    rows: int
    columns: list[str]
    counts: dict[str, dict[str, int]]
    """Per source: before, after, flipped, removed (before = after + removed)."""


def export_pairs(
    pairs: Sequence[PreferencePair],
    folder: str | Path,
    *,
    records: Sequence[Mapping[str, Any]] | None = None,
    card: Card | None = None,
) -> Exported:
    """Write `pairs` to `folder` as Parquet, JSON lines and a dataset card (see the module docstring).
    `records` are the edit records of `curation.edits.apply_edit` (id, source, action "flip" or "remove",
    rank, method, value): a flip's id must be among the pairs, a removal's must not."""
    folder = Path(folder)
    card = card or {}
    edits = None if records is None else _edit_index(pairs, records)
    flat = _flat_meta_types(pairs)
    schema = _schema(flat, edited=edits is not None)
    rows = [_row(p, flat, edits) for p in pairs]
    paths = {"parquet": folder / PARQUET_FILE, "jsonl": folder / JSONL_FILE, "card": folder / CARD_FILE}
    with atomic_path(paths["parquet"]) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    write_jsonl(paths["jsonl"], rows)
    counts = _counts(pairs, records or [])
    write_text(paths["card"], _card_text(card, schema, pairs, counts, records))
    return Exported(paths, len(rows), schema.names, counts)


def _scalar_type(value: Any) -> type | None:
    """The column type a meta value can be stored as without loss, or None."""
    if isinstance(value, bool | str):
        return type(value)
    if isinstance(value, int):
        return int if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        return float if math.isfinite(value) else None
    return None


def _flat_meta_types(pairs: Sequence[PreferencePair]) -> dict[str, pa.DataType]:
    """Meta keys that become columns (sorted), with their types."""
    seen: dict[str, set[type | None]] = {}
    for p in pairs:
        for key, value in p.meta.items():
            seen.setdefault(key, set()).add(_scalar_type(value))
    counts = Counter(key for p in pairs for key in p.meta)
    return {
        key: _SCALARS[next(iter(types))]
        for key, types in sorted(seen.items())
        if isinstance(key, str)
        and key not in RESERVED
        and counts[key] == len(pairs)
        and len(types) == 1
        and None not in types
    }


def _schema(flat: Mapping[str, pa.DataType], edited: bool) -> pa.Schema:
    fields = [("id", pa.string()), ("prompt", pa.list_(MESSAGE))]
    fields += [(name, pa.string()) for name in ("chosen", "rejected", "source", "kind")]
    if edited:
        fields += [
            ("flipped", pa.bool_()),
            ("edit_method", pa.string()),
            ("edit_rank", pa.int64()),
            ("edit_score", pa.float64()),
        ]
    fields += [*flat.items(), (META_COLUMN, pa.string())]
    return pa.schema(fields)


def _edit_index(pairs: Sequence[PreferencePair], records: Sequence[Mapping[str, Any]]) -> dict[str, Mapping]:
    """Flip records by pair id, after checking the records against the pairs."""
    ids = [p.id for p in pairs]
    present = set(ids)
    if len(present) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise ValueError(f"pair id {dup!r} occurs more than once: edit records cannot be matched")
    flips = {}
    for r in records:
        if r["action"] == "flip":
            if r["id"] not in present:
                raise ValueError(f"edit record flips pair {r['id']!r}, which is not in the set")
            flips[r["id"]] = r
        elif r["action"] == "remove":
            if r["id"] in present:
                raise ValueError(f"edit record removes pair {r['id']!r}, which is still in the set")
        else:
            raise ValueError(f"edit record of pair {r['id']!r}: unknown action {r['action']!r}")
    return flips


def _score(value: Any) -> float | None:
    if value is None or value == "":
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _row(pair: PreferencePair, flat: Mapping[str, pa.DataType], edits: Mapping[str, Mapping] | None) -> dict:
    row: dict[str, Any] = {
        "id": pair.id,
        "prompt": [{"role": m["role"], "content": m["content"]} for m in pair.prompt],
        "chosen": pair.chosen,
        "rejected": pair.rejected,
        "source": pair.source,
        "kind": pair.kind,
    }
    if edits is not None:
        r = edits.get(pair.id)
        row["flipped"] = r is not None
        row["edit_method"] = None if r is None else r.get("method")
        row["edit_rank"] = None if r is None or r.get("rank") in (None, "") else int(r["rank"])
        row["edit_score"] = None if r is None else _score(r.get("value"))
    for key in flat:
        row[key] = pair.meta.get(key)
    rest = {k: v for k, v in pair.meta.items() if k not in flat}
    row[META_COLUMN] = json.dumps(rest, ensure_ascii=False, sort_keys=True, default=str)
    return row


def _counts(
    pairs: Sequence[PreferencePair], records: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, int]]:
    after = Counter(p.source for p in pairs)
    flipped = Counter(r["source"] for r in records if r["action"] == "flip")
    removed = Counter(r["source"] for r in records if r["action"] == "remove")
    return {
        s: {
            "before": after[s] + removed[s],
            "after": after[s],
            "flipped": flipped[s],
            "removed": removed[s],
        }
        for s in sorted(set(after) | set(removed))
    }


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
