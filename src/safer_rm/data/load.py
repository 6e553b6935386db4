"""Load one source into pairs: resolve its path (file, dataset folder, hub id, hub fallback), detect or
apply its format, parse every row (or, for single labelled responses, pair rows within a prompt: singles.py),
count every row that cannot be used."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

from ..errors import DataError
from .config import SourceConfig
from .formats import FORMATS, PARSERS, RowProblem, describe_formats, detect_format
from .quality import DropReport
from .readers import FILE_SUFFIXES, Location, iter_file_rows, iter_hub_rows
from .records import PreferencePair
from .singles import SINGLE_FORMATS, load_singles

log = logging.getLogger(__name__)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def data_root(configured: str) -> str:
    """The data root: the SAFER_DATA_ROOT variable when set (and not empty), else `configured` (`data.root`,
    default ../shared/data from the working directory)."""
    return os.environ.get("SAFER_DATA_ROOT") or configured


def expand(path: str, root: str) -> str:
    return path.replace("${root}", data_root(root)) if path else path


def _looks_like_file(path: str) -> bool:
    name = path.lower().removesuffix(".gz")
    return name.endswith(FILE_SUFFIXES)


def iter_source_rows(src: SourceConfig, root: str) -> tuple[str, Iterator[tuple[Any, Location]]]:
    """(description, rows) for a source, following path -> dataset folder -> hub id -> hub fallback."""
    path = expand(src.path, root)
    if path and Path(path).is_file():
        return path, iter_file_rows(path)
    if path and Path(path).is_dir():
        return path, iter_hub_rows(path, src.config_name, src.split, src.data_dir)
    if path and _HUB_ID.match(path) and not _looks_like_file(path) and not path.startswith((".", "/")):
        return path, iter_hub_rows(path, src.config_name, src.split, src.data_dir)
    if src.hub:
        if path:
            log.warning("source %s: %s not found, falling back to hub id %s", src.name, path, src.hub)
        return src.hub, iter_hub_rows(src.hub, src.config_name, src.hub_split or src.split, src.data_dir)
    raise DataError(path, f"source '{src.name}': file not found")


def _too_long(pair: PreferencePair, limit: int) -> str | None:
    if len(pair.chosen) > limit:
        return "chosen"
    if len(pair.rejected) > limit:
        return "rejected"
    if sum(len(m["content"]) for m in pair.prompt) > limit:
        return "prompt"
    return None


def load_source(
    src: SourceConfig, root: str, report: DropReport, strict: bool = False, max_text_chars: int = 200_000
) -> list[PreferencePair]:
    """All usable pairs of `src`; degenerate rows are counted in `report` (or raise when `strict`)."""
    where, rows = iter_source_rows(src, root)
    first = next(rows, None)
    if first is None:
        raise DataError(where, f"source '{src.name}' has no rows")
    rows = chain([first], rows)
    fmt = src.format
    if fmt == "auto":
        row, loc = first
        fmt = detect_format(row)
        if fmt is None:
            fields = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
            raise loc.error(
                f"unknown format (fields: {fields}); expected one of: {describe_formats()}; "
                f"or set format: to one of {', '.join(FORMATS)}"
            )
        log.info("source %s: detected format %s from %s", src.name, fmt, loc)
    if fmt in SINGLE_FORMATS:
        return load_singles(
            src.name, src.kind, rows, report, strict, max_text_chars, src.max_pairs_per_prompt
        )
    parse = PARSERS[fmt]
    pairs: list[PreferencePair] = []
    n = 0
    for row, loc in rows:
        n += 1
        report.read[src.name] += 1
        try:
            if not isinstance(row, dict):
                raise RowProblem("wrong_type", None, f"row is a {type(row).__name__}, not an object")
            pair = parse(row, preference=src.pku_preference)
            field = _too_long(pair, max_text_chars)
            if field:
                raise RowProblem("too_long", field, f"over data.max_text_chars={max_text_chars} characters")
        except RowProblem as problem:
            if strict:
                raise loc.error(f"{problem.reason}: {problem.detail}", field=problem.field) from None
            report.drop(src.name, problem.reason, str(loc))
            continue
        row_id = row.get("id")
        pair.id = f"{src.name}:{row_id if isinstance(row_id, str | int) and row_id != '' else n - 1}"
        pair.source, pair.kind = src.name, src.kind
        pair.meta.setdefault("origin", str(loc))
        pairs.append(pair)
    ids = [p.id for p in pairs]
    if len(set(ids)) != len(ids):  # ids in the data are not unique: fall back to row numbers
        for i, p in enumerate(pairs):
            p.meta["row_id"] = p.id.split(":", 1)[1]
            p.id = f"{src.name}:{i}"
    report.kept[src.name] += len(pairs)
    return pairs
