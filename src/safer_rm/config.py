"""The whole configuration of a run: one section per stage, the same in YAML files and on the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .activations.config import ActivationsConfig
from .config_flags import apply_flags
from .curation.config import CurationConfig
from .data.config import DataConfig
from .errors import ConfigError
from .experiment.config import AuditConfig, CausalConfig, DetectConfig, InspectConfig
from .features.config import AttributionConfig, FeaturesConfig
from .features.judges.config import JudgeConfig
from .models.config import ModelConfig
from .reward.config import EvalConfig, RMConfig
from .sae.config import SAEConfig
from .typed_config import from_dict, load_yaml, parse_set, set_path, to_dict, validate


@dataclass
class RunConfig:
    """Where the run lives and what it runs on."""

    name: str = "run"
    """Run name; the default run directory is runs/<name>."""
    dir: str | None = None
    """Run directory (default: runs/<name>). Every artifact of the run is written inside it."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device for scoring and extraction (training follows transformers/accelerate)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds of the experiment; reward models of every variant are trained once per seed."""
    budget_s: float | None = None
    """Seconds the run's stages should take in all (their sum, as `safer run` prints it last). Over it, the run
    says so in its last lines and names the largest stages; null: no budget. The demo sets 600."""
    threads: int | None = None
    """CPU threads of torch (None: torch's default, one per core). Results depend on it: reductions split
    differently. With `rm.bf16: false`, a fixed count gives the same scores in every process on one machine."""

    def check(self) -> None:
        if self.budget_s is not None and self.budget_s <= 0:
            raise ConfigError("budget_s", f"must be > 0 seconds or null, got {self.budget_s}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads", f"must be >= 1 or null, got {self.threads}")
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ConfigError("name", f"must be a plain name, got {self.name!r}")
        if not self.seeds:
            raise ConfigError("seeds", "needs at least one seed")
        if len(set(self.seeds)) < len(self.seeds):
            raise ConfigError("seeds", f"seeds must differ, got {self.seeds}")

    @property
    def path(self) -> Path:
        return Path(self.dir) if self.dir else Path("runs") / self.name


@dataclass
class Config:
    """Everything a run needs; YAML files set any subset of it."""

    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rm: RMConfig = field(default_factory=RMConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    activations: ActivationsConfig = field(default_factory=ActivationsConfig)
    sae: SAEConfig = field(default_factory=SAEConfig)
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    curation: CurationConfig = field(default_factory=CurationConfig)
    causal: CausalConfig = field(default_factory=CausalConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    inspect: InspectConfig = field(default_factory=InspectConfig)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def read_config_file(path: str | Path, seen: tuple = ()) -> dict:
    """A YAML config; `extends: other.yaml` (relative to the file) is read first and overridden key by key
    (mappings merge, lists and values replace)."""
    path = Path(path)
    if path.resolve() in seen:
        raise ConfigError("extends", "config files extend each other in a cycle", str(path))
    data = load_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError("extends", "must be a path to another config file", str(path))
    return _merge(read_config_file(path.parent / parent, (*seen, path.resolve())), data)


def load_config(path: str | Path | None = None, overrides: list[str] = (), namespace=None) -> Config:
    """Defaults <- YAML file(s) <- generated command-line flags <- `--set key=value` overrides; then validated."""
    source = str(path) if path else None
    cfg = from_dict(Config, read_config_file(path), source=source) if path else Config()
    if namespace is not None:
        apply_flags(cfg, namespace)
    for key, value in parse_set(list(overrides)):
        set_path(cfg, key, value, source="--set")
    validate(cfg, source=source)
    return cfg


def config_dict(cfg: Config) -> dict:
    return to_dict(cfg)
