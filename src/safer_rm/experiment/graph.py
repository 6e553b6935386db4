"""What a stage is: its declaration (`Stage`), the instances it runs as (one, one per edited variant, or one
per (variant, seed)), and the settings that make up its fingerprint. The declarations themselves are in
registry.py; the runner (runner.py) and the planner (plan.py) read them, nothing else decides the graph."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import Config, config_dict
from ..curation.variants import CLEAN, Variant


@dataclass(frozen=True)
class Key:
    """Which instance of a stage: the training-set variant and the seed, where the stage has them."""

    variant: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Command:
    """How a stage appears on the command line (`safer <name>`)."""

    help: str
    done: str
    """Printed when the command finishes; {run} is the run directory."""
    summary: bool = True
    """Rewrite summary.json and the report afterwards."""


@dataclass(frozen=True)
class Stage:
    """One stage, declared once: the runner, the planner, the CLI, `safer clear`, the summary and the
    crash test all read these fields."""

    name: str
    run: Callable[..., dict | None]
    """The work: `run(ctx, key) -> info` (info goes to the manifest); loads, calls the domain code, writes."""
    needs: Callable[[Config, Key], list[tuple[str, Key]]]
    """The stage instances this one reads (see `need`, `per_variant`)."""
    sections: tuple[str, ...] = ()
    """Config sections whose values make its fingerprint (beside its needs' fingerprints)."""
    writes: tuple[str, ...] = ()
    """Files it writes (run-relative, {variant} and {seed} filled in); all must exist for it to be reused."""
    over: Callable[[Config], list[Key]] = field(default=lambda cfg: [Key()])
    """The instances it runs as."""
    values: Callable[[Config, Key], dict] | None = None
    """Settings of one instance that replace or add to its sections' values in the fingerprint."""
    inputs: Callable[[Any, Key], dict] | None = None
    """Hashes of the files it reads that no config key names (training sets, source files)."""
    by_content: tuple[str, ...] = ()
    """Needed stages whose outputs it reads only through files its `inputs` hash (train-rm: the edited set
    `curate` writes): their fingerprints stay out of its own and their rerunning alone does not rerun it;
    the hashes, taken after they ran, decide."""
    enabled: Callable[[Config], bool] = field(default=lambda cfg: True)
    folder: str | None = None
    """The run folder it owns (`safer clear --folders` deletes it and forgets the stage)."""
    cache: bool = False
    """Its outputs are a deterministic cache: rebuilt, they do not make the stages reading them rerun."""
    rank0: bool = False
    """Only rank 0 does the work of a multi-process job; the other ranks wait at its end."""
    command: Command | None = None
    summary: Callable[[dict], dict] | None = None
    """Its part of summary.json, from its manifest info (shown only while it is current)."""
    summary_key: str | None = None
    """The key of that part (default: the stage's name)."""

    def instance(self, key: Key) -> str:
        return instance_name(self.name, key)


def instance_name(stage: str, key: Key) -> str:
    parts = (
        [stage]
        + ([key.variant] if key.variant else [])
        + ([f"seed-{key.seed}"] if key.seed is not None else [])
    )
    return "/".join(parts)


# ---- the instances stages run over -----------------------------------------------------------------
def edits(cfg: Config) -> list[tuple[str, str, float]]:
    """(mode, method, ratio) of every edited training set."""
    cc = cfg.curation
    return [
        (mode, method, float(r))
        for mode, ratios in (("poison", cc.poison_ratios), ("denoise", cc.denoise_ratios))
        for method in cc.methods
        for r in ratios
    ]


def edited_variants(cfg: Config) -> list[str]:
    return [Variant.edit(*e).name for e in edits(cfg)]


def variants(cfg: Config) -> list[str]:
    """Every training-set variant: clean first, then the edited sets."""
    return [CLEAN, *edited_variants(cfg)]


def once(cfg: Config) -> list[Key]:
    return [Key()]


def per_edit(cfg: Config) -> list[Key]:
    return [Key(v) for v in edited_variants(cfg)]


def per_model(cfg: Config) -> list[Key]:
    """Every (variant, seed): variant-major, so each variant's models are trained and evaluated together."""
    return [Key(v, s) for v in variants(cfg) for s in cfg.run.seeds]


def ensemble_seeds(cfg: Config) -> list[int]:
    """Seeds of the detectors' ensemble of clean reward models: the run's seeds, then the next ones, up to
    `detect.ensemble`; none with an existing reward model (it is one model, whatever the seed)."""
    n = cfg.detect.ensemble
    if n < 2 or cfg.model.reward_model:
        return []
    seeds = list(dict.fromkeys(cfg.run.seeds))
    while len(seeds) < n:
        seeds.append(max(seeds) + 1)
    return seeds[:n]


def fold_variants(cfg: Config) -> list[str]:
    """The out-of-fold detector's training-set variants (`fold-1of5`, ...), none when it is off."""
    k = cfg.detect.folds
    return [Variant.of_fold(i, k).name for i in range(k)] if k >= 2 else []


def trained_models(cfg: Config) -> list[Key]:
    """Every reward model a run trains: the sweep's (variant, seed) and, with the detectors on, the ensemble's
    extra clean seeds and one model per fold (first seed)."""
    keys = per_model(cfg)
    if cfg.detect.enabled:
        keys += [Key(CLEAN, s) for s in ensemble_seeds(cfg) if Key(CLEAN, s) not in keys]
        keys += [Key(v, cfg.run.seeds[0]) for v in fold_variants(cfg)]
    return keys


# ---- what a stage needs ----------------------------------------------------------------------------
def need(*names: str) -> Callable[[Config, Key], list[tuple[str, Key]]]:
    """Needs of a stage that runs once (a per-(variant, seed) stage is taken at its first instance: see
    `resolve`)."""
    return lambda cfg, key: [(n, Key()) for n in names]


def same_key(*names: str) -> Callable[[Config, Key], list[tuple[str, Key]]]:
    """Needs of a per-(variant, seed) stage on other stages of the same instance."""
    return lambda cfg, key: [(n, key) for n in names]


def resolve(needed: Stage, key: Key, cfg: Config) -> Key:
    """The instance a need names: a stage that runs once asks a per-(variant, seed) stage for the clean
    model of the first seed."""
    per_seed = needed.over in (per_model, trained_models)
    return Key(CLEAN, cfg.run.seeds[0]) if per_seed and key == Key() else key


# ---- fingerprints ------------------------------------------------------------------------------------
def dotted(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"sae": {"k": 64}} -> {"sae.k": 64}, lists of mappings by index ("data.sources.0.weight", as `--set`
    addresses them): the form config changes are reported in."""
    if isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        obj = {str(i): v for i, v in enumerate(obj)}
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(dotted(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def stage_values(stage: Stage, cfg: Config, key: Key, section_values: dict[str, Callable]) -> dict[str, Any]:
    """The settings of one stage instance, flattened: its sections (or their fingerprint form, e.g. the
    judge's), its key, and its own values."""
    d = config_dict(cfg)
    values: dict[str, Any] = {
        s: section_values[s](cfg) if s in section_values else d[s] for s in stage.sections
    }
    if stage.values is not None:
        values.update(stage.values(cfg, key))
    if key.variant is not None:
        values["variant"] = key.variant
    if key.seed is not None:
        values["seed"] = key.seed
    return dotted(values)


def diff(old: dict[str, Any], new: dict[str, Any], limit: int = 3) -> list[str]:
    """'sae.k 64 -> 32' for every changed, added or removed setting (the first `limit`, then a count)."""
    changed = [
        f"{k} {_short(old.get(k, '(unset)'))} -> {_short(new.get(k, '(unset)'))}"
        for k in sorted(set(old) | set(new))
        if old.get(k, "(unset)") != new.get(k, "(unset)")
    ]
    return changed[:limit] + ([f"and {len(changed) - limit} more"] if len(changed) > limit else [])


def _short(value: Any, width: int = 40) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def instances(stages: Sequence[Stage], cfg: Config) -> list[tuple[Stage, Key]]:
    """Every enabled stage instance, in declaration order."""
    return [(st, key) for st in stages if st.enabled(cfg) for key in st.over(cfg)]
