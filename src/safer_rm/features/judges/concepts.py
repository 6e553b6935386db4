"""Versioned descriptions of safety concepts and of ordinary topics (concepts/safety_<version>.yaml) that the
embedding judge compares contexts with; their digest is part of the judge's fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from ...errors import ConfigError
from ...io import sha256_text


@dataclass(frozen=True)
class Concepts:
    version: str
    concepts: tuple[str, ...]
    """Concept name of each description."""
    texts: tuple[str, ...]
    safety: tuple[bool, ...]
    """Whether each description belongs to a safety concept (else an ordinary topic)."""
    digest: str


@cache
def load_concepts(version: str) -> Concepts:
    """A packaged version (`v1` -> concepts/safety_v1.yaml) or the path of a YAML file in that layout."""
    path = Path(version)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text, source, name = path.read_text(encoding="utf-8"), str(path), path.stem
    else:
        resource = resources.files("safer_rm").joinpath("concepts", f"safety_{version}.yaml")
        if not resource.is_file():
            raise ConfigError(
                "judge.concepts_version", f"no concepts/safety_{version}.yaml and no file {version!r}"
            )
        text, source, name = resource.read_text(encoding="utf-8"), f"concepts/safety_{version}.yaml", version
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError("judge.concepts_version", f"{source}: invalid YAML ({err})") from None
    concepts, texts, safety = [], [], []
    for group, is_safety in (("safety", True), ("ordinary", False)):
        section = data.get(group) if isinstance(data, dict) else None
        if not isinstance(section, dict) or not section:
            raise ConfigError("judge.concepts_version", f"{source}: needs a non-empty mapping '{group}'")
        for concept, descriptions in section.items():
            if (
                not isinstance(descriptions, list)
                or not descriptions
                or not all(isinstance(d, str) and d.strip() for d in descriptions)
            ):
                raise ConfigError(
                    "judge.concepts_version",
                    f"{source}: {group}.{concept} must be a list of description strings",
                )
            for d in descriptions:
                concepts.append(str(concept))
                texts.append(d.strip())
                safety.append(is_safety)
    digest = sha256_text(text)[:12]
    return Concepts(name, tuple(concepts), tuple(texts), tuple(safety), digest)
