"""Configuration of the data stage: which sources, how they are mixed and split."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError

DEFAULT_ROOT = "../shared/data"
"""`data.root` unless configured: relative to the working directory; SAFER_DATA_ROOT overrides it (`data.load.data_root`)."""


@dataclass
class SourceConfig:
    """One preference-data source."""

    name: str
    """Short name; pair ids are `<name>:<row>` and reports group by it."""
    path: str = ""
    """File (jsonl/json/parquet/csv, .gz ok), local dataset folder, or hub id. `${root}` is the data root."""
    format: Literal["auto", "hh", "pku", "rewardbench", "messages", "generic", "wildguardmix"] = "auto"
    """Row format; `auto` detects it from the first row's fields."""
    kind: Literal["safety", "chat"] = "safety"
    """Whether the source counts as safety or chat data in held-out accuracy and edit reports."""
    weight: float = 1.0
    """Relative share of this source in the mix when `data.n_pairs` is set."""
    max_pairs: int | None = None
    """Use at most this many pairs of the source (seeded subsample)."""
    split: str = "train"
    """Split to read from a hub id or dataset folder."""
    config_name: str | None = None
    """Dataset configuration name for a hub id."""
    data_dir: str | None = None
    """`data_dir` for a hub id (HH-RLHF: harmless-base)."""
    hub: str | None = None
    """Fallback hub id used when `path` does not exist (e.g. the mirror is absent)."""
    hub_split: str | None = None
    """Split of the fallback hub id (default: `split`)."""
    pku_preference: Literal["safer", "better", "safe_vs_unsafe"] = "safer"
    """PKU-SafeRLHF schema only: chosen = safer response, better response, or only pairs with exactly one safe response."""
    max_pairs_per_prompt: int | None = 3
    """WildGuardMix schema only: at most this many pairs formed per prompt from its labelled responses (null: all)."""

    def check(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name or ""):
            raise ConfigError("name", f"must be a plain name (letters, digits, _ . -), got {self.name!r}")
        if self.weight < 0:
            raise ConfigError("weight", f"must be >= 0, got {self.weight}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ConfigError("max_pairs", f"must be >= 1, got {self.max_pairs}")
        if self.max_pairs_per_prompt is not None and self.max_pairs_per_prompt < 1:
            raise ConfigError("max_pairs_per_prompt", f"must be >= 1, got {self.max_pairs_per_prompt}")
        if not self.path and not self.hub:
            raise ConfigError("path", "a source needs a path or a hub id")


@dataclass
class DataConfig:
    """Preference data: sources, mix, prompt-disjoint split."""

    sources: list[SourceConfig] = field(default_factory=list)
    """The sources to mix (set in the YAML file)."""
    root: str = DEFAULT_ROOT
    """Data root substituted for `${root}` in source paths; the SAFER_DATA_ROOT variable overrides it."""
    n_pairs: int | None = None
    """Total pairs drawn from all sources by weight before the split (None: all)."""
    test_fraction: float = 0.1
    """Share of prompts held out for the in-distribution test split."""
    seed: int = 0
    """Seed for subsampling and the split."""
    strict: bool = False
    """Stop at the first degenerate row with its file, line and field instead of counting it."""
    max_text_chars: int = 200_000
    """Rows with a prompt or response longer than this are counted as `too_long` (protects memory)."""

    def check(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError("test_fraction", f"must be in [0, 1), got {self.test_fraction}")
        if self.n_pairs is not None and self.n_pairs < 2:
            raise ConfigError("n_pairs", f"must be >= 2, got {self.n_pairs}")
        names = [s.name for s in self.sources]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ConfigError("sources", f"duplicate source names: {', '.join(sorted(dup))}")
