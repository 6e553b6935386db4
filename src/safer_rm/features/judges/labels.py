"""Human review: a file mapping latent -> score (and an optional explanation), as JSON, YAML or CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from ...errors import DataError
from ..types import Judgement
from .base import Judge


def _score(value, path: str, where: dict) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise DataError(path, f"score {value!r} is not a number", **where) from None
    if not 1 <= score <= 5:
        raise DataError(path, f"score {score:g} outside 1-5", **where)
    return score


def read_labels(path: str) -> dict[int, tuple[float, str]]:
    p = Path(path)
    if not p.is_file():
        raise DataError(path, "labels file not found")
    out: dict[int, tuple[float, str]] = {}
    if p.suffix.lower() == ".csv":
        with open(p, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"latent", "score"} <= set(reader.fieldnames):
                raise DataError(path, "a labels CSV needs the columns latent,score[,explanation]", line=1)
            for row in reader:
                where = {"line": reader.line_num}
                try:
                    latent = int(row["latent"])
                except (TypeError, ValueError):
                    raise DataError(path, f"latent {row['latent']!r} is not an integer", field="latent",
                                    **where) from None
                out[latent] = (_score(row["score"], path, {**where, "field": "score"}), row.get("explanation") or "")
        return out
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise DataError(path, f"unreadable labels file ({err})") from None
    if not isinstance(data, dict):
        raise DataError(path, "labels must be a mapping latent -> score or -> {score, explanation}")
    for key, value in data.items():
        try:
            latent = int(key)
        except (TypeError, ValueError):
            raise DataError(path, f"key {key!r} is not a latent id", field=str(key)) from None
        if isinstance(value, dict):
            out[latent] = (_score(value.get("score"), path, {"field": f"{key}.score"}),
                           str(value.get("explanation", "")))
        else:
            out[latent] = (_score(value, path, {"field": str(key)}), "")
    return out


class LabelsJudge(Judge):
    name = "labels"

    def __init__(self, cfg, cache_dir=None):
        super().__init__(cfg, None)  # the file is the source of truth: never cache
        self.labels = read_labels(cfg.labels_path)

    def _judge(self, items):
        out = []
        for item in items:
            if item.latent in self.labels:
                score, expl = self.labels[item.latent]
                out.append(Judgement(item.latent, score, expl, "ok"))
            else:
                out.append(Judgement(item.latent, None, "", "unlabelled"))
        return out
