"""The features stage's document (features.json) read back, for the summary and the report."""

from __future__ import annotations

from ...io import read_json
from ..context import RunContext


def read_features(ctx: RunContext) -> dict | None:
    path = ctx.features_dir() / "features.json"
    return read_json(path) if path.is_file() else None
