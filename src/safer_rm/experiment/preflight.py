"""Cheap checks of every path a run will need, before any stage writes anything."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..data.load import expand
from ..errors import DataError, ModelError
from ..models.registry import EMBEDDED, check_local


def preflight(cfg: Config) -> None:
    mc = cfg.model
    if mc.name.lower() not in EMBEDDED:
        check_local(mc.name, mc.allow_pickle)
    if mc.reward_model and mc.reward_model.lower() not in EMBEDDED:
        check_local(mc.reward_model, mc.allow_pickle)
    sets = [("source", s) for s in cfg.data.sources] + [
        ("eval.pool_sources", s) for s in cfg.eval.pool_sources
    ]
    sets += [("eval.extra", s) for s in cfg.eval.extra_sets()]
    for what, src in sets:
        path = expand(src.path, cfg.data.root)
        if (
            path
            and not Path(path).exists()
            and not src.hub
            and ("/" not in path or path.startswith((".", "/")) or Path(path).suffix)
        ):
            raise DataError(path, f"{what} '{src.name}': file not found")
    if cfg.sae.path and not Path(cfg.sae.path).exists():
        raise ModelError(f"{cfg.sae.path}: no SAE folder here (sae.path)")
    if cfg.judge.kind == "labels" and not Path(cfg.judge.labels_path).is_file():
        raise DataError(cfg.judge.labels_path, "labels file not found (judge.labels_path)")
