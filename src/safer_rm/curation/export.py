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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..data.records import PreferencePair
from ..io import atomic_path, write_jsonl, write_text
from .dataset_card import METHODS, Card, _card_text
from .export_rows import (
    CARD_FILE,
    CORE_COLUMNS,
    EDIT_COLUMNS,
    JSONL_FILE,
    META_COLUMN,
    PARQUET_FILE,
    RESERVED,
    _counts,
    _edit_index,
    _flat_meta_types,
    _row,
    _schema,
)

__all__ = [
    "CARD_FILE",
    "CORE_COLUMNS",
    "EDIT_COLUMNS",
    "JSONL_FILE",
    "METHODS",
    "META_COLUMN",
    "PARQUET_FILE",
    "RESERVED",
    "Card",
    "Exported",
    "export_pairs",
]


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
