"""The rows of an exported preference set (`curation.export`): its file names and columns, the Arrow
schema, one row per pair (core columns, edit columns, flat meta columns and the rest of the meta as JSON),
the check of the edit records against the pairs, and the per-source counts."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..data.records import PreferencePair

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
