"""What the planner reads of a stage before it runs it, for `safer --dry-run` as for a real run: the hashes of
the files it reads that no config key names (`inputs`), the settings an instance adds to its fingerprint
(`values`), needs that depend on the config, and whether it is on. Light on purpose: planning imports no
torch or transformers; the stage functions (the work) are in the other modules here and load on first use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ...config import config_dict
from ...curation.variants import Variant
from ...data import SourceConfig
from ...data.load import data_root, expand
from ...reward.files import RENDER_FILE
from ..graph import CLEAN, Key, ensemble_seeds, fold_variants

if TYPE_CHECKING:
    from ..context import RunContext

CACHES = ("pairs", "general", "heldout")
KEPT_CACHES = ("pairs", "heldout")
"""The caches every extraction writes (`general` only with `activations.general_source: cache`)."""
"""The activation caches the extract stage writes (activations/<name>/)."""


def source_files(ctx: RunContext, sources=None) -> dict[str, str]:
    """Local files or dataset folders of sources (default: the data's), by source name (hub datasets have none)."""
    sources = ctx.cfg.data.sources if sources is None else sources
    paths = {src.name: expand(src.path, ctx.cfg.data.root) for src in sources}
    return {name: path for name, path in paths.items() if path and Path(path).exists()}


def data_inputs(ctx: RunContext, key: Key) -> dict:
    if ctx.given is not None:
        return {"given": ctx.given.fingerprint}
    return {
        "root": data_root(ctx.cfg.data.root),
        "files": {name: ctx.data.file_hash(Path(p)) for name, p in source_files(ctx).items()},
    }


def given_rm(ctx: RunContext, key: Key) -> Path | None:
    """The reward model a sub-run was given for this (clean) model, if any."""
    if ctx.given is None or key.variant != CLEAN:
        return None
    return ctx.given.rm_from.get(key.seed)


def existing_rm(ctx: RunContext, key: Key) -> str | None:
    return ctx.cfg.model.reward_model if key.variant == CLEAN else None


def train_inputs(ctx: RunContext, key: Key) -> dict:
    out = {"train": ctx.data.file_hash(ctx.paths.train(key.variant))}
    src = given_rm(ctx, key)
    if src is not None:
        files = sorted([*src.glob("*.safetensors"), *src.glob("*.bin"), src / "config.json"])
        out["copied"] = {f.name: ctx.data.file_hash(f) for f in files}
    existing = existing_rm(ctx, key)
    if existing and Path(existing).is_dir():
        files = sorted([*Path(existing).glob("*.safetensors"), Path(existing) / "config.json"])
        files += [Path(existing) / RENDER_FILE] if (Path(existing) / RENDER_FILE).is_file() else []
        out["existing"] = {f.name: ctx.data.file_hash(f) for f in files}
    return out


def eval_inputs(ctx: RunContext, key: Key) -> dict:
    """Hashes of the local evaluation files (RewardBench, RewardBench 2 and the extra sets): an edited file
    reruns evaluations."""
    ec = ctx.cfg.eval
    files = source_files(ctx, [SourceConfig(name="rewardbench", path=ec.rewardbench), *ec.extra_sets()])
    if ec.rewardbench2:
        files.update(source_files(ctx, [SourceConfig(name="rewardbench2", path=ec.rewardbench2)]))
    return {name: ctx.data.file_hash(Path(p)) for name, p in files.items()}


def pool_inputs(ctx: RunContext, key: Key) -> dict:
    files = source_files(ctx, ctx.cfg.eval.pool_sources)
    return {
        "data": ctx.data.file_hash(ctx.paths.train()),
        "files": {n: ctx.data.file_hash(Path(p)) for n, p in files.items()},
    }


def pool_settings(cfg, key: Key) -> dict:
    d = config_dict(cfg)
    return {
        "eval": {k: d["eval"][k] for k in ("pool", "pool_max_per_source", "pool_sources")},
        "data": {k: d["data"][k] for k in ("sources", "seed")},
    }


def fold_settings(cfg, key: Key) -> dict:
    return {"detect": {"folds": cfg.detect.folds, "seed": cfg.detect.seed}}


def detect_needs(cfg, key: Key) -> list[tuple[str, Key]]:
    s0 = cfg.run.seeds[0]
    return (
        [("score", Key())]
        + [("train-rm", Key(v, s0)) for v in fold_variants(cfg)]
        + [("train-rm", Key(CLEAN, s)) for s in ensemble_seeds(cfg)]
    )


def edit_settings(cfg, key: Key) -> dict:
    """The settings of one edited set: (mode, method, ratio) from its name and the shared curation keys."""
    edit = Variant.parse(key.variant)
    cc = cfg.curation
    return {
        "curation": {
            "mode": edit.mode,
            "method": edit.method,
            "ratio": edit.ratio,
            "scope": cc.scope,
            "stratify": cc.stratify,
            "seed": cc.seed,
        }
    }


def attribution_enabled(cfg) -> bool:
    """The attribution stage runs when it is switched on or the features rank by it."""
    return cfg.attribution.enabled or cfg.features.salience == "attribution"


def warmup_fixed() -> bool:
    """Whether the installed transformers is one where `rm.warmup_ratio` used to be lost (4.x: a fractional
    `warmup_steps` meant no warm-up; reward/arguments.py maps it right since). Read from the package metadata,
    so planning imports no transformers."""
    from importlib import metadata

    try:
        return int(metadata.version("transformers").split(".")[0]) < 5
    except (metadata.PackageNotFoundError, ValueError):
        return False
