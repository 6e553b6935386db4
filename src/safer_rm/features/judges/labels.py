"""Human review: a file mapping latent -> score 1-5 (and an optional explanation), as JSON, YAML or CSV.

Accepted shapes (JSON or YAML):
    {"123": 5, "456": {"score": 2, "explanation": "cooking recipes"}}
    [{"latent": 123, "score": 5}, {"latent": 456, "score": 2, "explanation": "cooking recipes"}]
CSV: a header with `latent,score` and optionally `explanation`.

A bad file raises `DataError` naming the file, the line (CSV, YAML; JSON syntax errors) or the entry and
field. A latent missing from the file gets `score=None, status="unlabelled"` (selection skips it). Labels
are never cached: the file is the source of truth and re-reading it costs nothing.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ...errors import DataError
from ..types import Judgement, LatentContexts
from .base import Judge
from .config import JudgeConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Label:
    score: float
    explanation: str
    where: str
    """Line or entry the label came from (for messages)."""


@dataclass(frozen=True)
class _Entry:
    latent: Any
    value: Any
    line: int | None
    row: int | None
    field: str | None
    """Prefix of the field names in messages (the mapping key, for a mapping file)."""


def _check_score(value: Any, path: str, e: _Entry, field: str) -> float:
    if isinstance(value, bool) or value is None:
        raise DataError(path, f"score {value!r} is not a number", line=e.line, row=e.row, field=field)
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise DataError(
            path, f"score {value!r} is not a number", line=e.line, row=e.row, field=field
        ) from None
    if not math.isfinite(score) or not 1 <= score <= 5:
        raise DataError(path, f"score {score:g} outside 1-5", line=e.line, row=e.row, field=field)
    return score


def _check_latent(value: Any, path: str, e: _Entry, field: str) -> int:
    if isinstance(value, bool):
        raise DataError(path, f"latent {value!r} is not an integer", line=e.line, row=e.row, field=field)
    try:
        latent = int(str(value).strip())
    except (TypeError, ValueError):
        raise DataError(
            path, f"latent {value!r} is not an integer", line=e.line, row=e.row, field=field
        ) from None
    if latent < 0:
        raise DataError(path, f"latent {latent} is negative", line=e.line, row=e.row, field=field)
    return latent


def _label(path: str, e: _Entry) -> tuple[int, float, str]:
    prefix = f"{e.field}." if e.field is not None else ""
    if e.field is not None:  # mapping entry: the key is the latent
        latent = _check_latent(e.latent, path, e, e.field)
        value = e.value
        if not isinstance(value, dict):
            return latent, _check_score(value, path, e, e.field), ""
    else:
        value = e.value
        if not isinstance(value, dict):
            raise DataError(
                path, "each entry must be a mapping with latent and score", line=e.line, row=e.row
            )
        if "latent" not in value:
            raise DataError(path, "missing", line=e.line, row=e.row, field="latent")
        latent = _check_latent(value["latent"], path, e, "latent")
    unknown = sorted(set(value) - {"latent", "score", "explanation"})
    if unknown:
        raise DataError(
            path,
            "unknown field (expected latent, score, explanation)",
            line=e.line,
            row=e.row,
            field=prefix + str(unknown[0]),
        )
    if "score" not in value:
        raise DataError(path, "missing", line=e.line, row=e.row, field=prefix + "score")
    explanation = value.get("explanation")
    if explanation is not None and not isinstance(explanation, str):
        raise DataError(path, "must be text", line=e.line, row=e.row, field=prefix + "explanation")
    return latent, _check_score(value["score"], path, e, prefix + "score"), explanation or ""


def _csv_entries(path: Path) -> Iterator[_Entry]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        names = [n.strip() for n in reader.fieldnames or []]
        if not {"latent", "score"} <= set(names):
            raise DataError(
                str(path),
                f"CSV header must have the columns latent,score[,explanation]; got "
                f"{','.join(names) or 'nothing'}",
                line=1,
            )
        reader.fieldnames = names
        for row in reader:
            if None in row:
                raise DataError(str(path), "more cells than header columns", line=reader.line_num)
            if not any((v or "").strip() for v in row.values()):
                continue
            value = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
            if value.get("score") in ("", None):
                raise DataError(str(path), "missing", line=reader.line_num, field="score")
            if not value.get("explanation"):
                value.pop("explanation", None)
            yield _Entry(None, value, reader.line_num, None, None)


def _yaml_entries(path: Path, text: str) -> Iterator[_Entry]:
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(err, "problem", None) or str(err)
            raise DataError(str(path), f"invalid YAML: {problem}", line=line) from None
        if isinstance(root, yaml.MappingNode):
            for knode, vnode in root.value:
                key = loader.construct_object(knode, deep=True)
                yield _Entry(
                    key, loader.construct_object(vnode, deep=True), knode.start_mark.line + 1, None, str(key)
                )
        elif isinstance(root, yaml.SequenceNode):
            for node in root.value:
                yield _Entry(
                    None, loader.construct_object(node, deep=True), node.start_mark.line + 1, None, None
                )
        else:
            raise DataError(str(path), "expected a mapping latent -> score or a list of {latent, score}")
    finally:
        loader.dispose()


def _json_entries(path: Path, text: str) -> Iterator[_Entry]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(str(path), f"invalid JSON: {err.msg} (column {err.colno})", line=err.lineno) from None
    if isinstance(data, dict):
        for key, value in data.items():
            yield _Entry(key, value, None, None, str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield _Entry(None, value, None, i, None)
    else:
        raise DataError(str(path), "expected a mapping latent -> score or a list of {latent, score}")


def read_labels(path: str | Path) -> dict[int, Label]:
    """Latent -> Label from a JSON, YAML or CSV file; `DataError` (file, line or entry, field) on any flaw."""
    p = Path(path)
    if not p.is_file():
        raise DataError(str(p), "labels file not found")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        entries: Iterator[_Entry] = _csv_entries(p)
    elif suffix in (".json", ".yaml", ".yml"):
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise DataError(str(p), f"not UTF-8 text (byte {err.start})") from None
        entries = _json_entries(p, text) if suffix == ".json" else _yaml_entries(p, text)
    else:
        raise DataError(str(p), "unknown labels file type; expected .json, .yaml, .yml or .csv")
    out: dict[int, Label] = {}
    for e in entries:
        latent, score, explanation = _label(str(p), e)
        where = (
            f"line {e.line}"
            if e.line is not None
            else f"row {e.row}"
            if e.row is not None
            else f"key {e.field!r}"
        )
        if latent in out:
            raise DataError(
                str(p),
                f"latent {latent} labelled twice (first at {out[latent].where})",
                line=e.line,
                row=e.row,
                field=e.field or "latent",
            )
        out[latent] = Label(score, explanation, where)
    return out


class LabelsJudge(Judge):
    name = "labels"
    cacheable = False

    def __init__(self, cfg: JudgeConfig, cache_dir: str | Path | None = None, progress: bool = True):
        super().__init__(cfg, cache_dir, progress)
        self.labels = read_labels(cfg.labels_path)
        self.prompt_version = ""
        log.info("labels judge: %d labelled latents from %s", len(self.labels), cfg.labels_path)

    def _judge_iter(self, items: Sequence[LatentContexts]) -> Iterator[tuple[int, Judgement]]:
        unlabelled = 0
        for i, item in enumerate(items):
            label = self.labels.get(item.latent)
            if label is None:
                unlabelled += 1
                yield (
                    i,
                    Judgement(
                        item.latent,
                        None,
                        status="unlabelled",
                        extra={"labels_path": str(self.cfg.labels_path)},
                    ),
                )
            else:
                yield (
                    i,
                    Judgement(
                        item.latent,
                        label.score,
                        label.explanation,
                        status="ok",
                        extra={"labels_path": str(self.cfg.labels_path), "where": label.where},
                    ),
                )
        if unlabelled:
            log.warning(
                "labels judge: %d of %d latents are not in %s (status 'unlabelled', not selected)",
                unlabelled,
                len(items),
                self.cfg.labels_path,
            )
