"""Weighted mix of sources, seeded subsampling and a prompt-disjoint train/test split."""

from __future__ import annotations

import hashlib
import logging
import random
from collections import defaultdict
from dataclasses import dataclass

from .config import DataConfig
from .load import load_source
from .quality import DropReport
from .records import PreferencePair

log = logging.getLogger(__name__)


@dataclass
class PairSplit:
    train: list[PreferencePair]
    test: list[PreferencePair]
    report: DropReport


def quotas(available: dict[str, int], weights: dict[str, float], total: int | None) -> dict[str, int]:
    """Pairs to take per source: `total` shared by weight (largest remainder), capped by what exists."""
    if total is None:
        return dict(available)
    wsum = sum(weights.values())
    if wsum <= 0:
        raise ValueError("source weights sum to zero")
    raw = {s: total * weights[s] / wsum for s in available}
    out = {s: int(v) for s, v in raw.items()}
    for s in sorted(raw, key=lambda s: raw[s] - out[s], reverse=True)[: total - sum(out.values())]:
        out[s] += 1
    return {s: min(n, available[s]) for s, n in out.items()}


def _unit(seed: int, key: str) -> float:
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def prompt_disjoint_split(
    pairs: list[PreferencePair], test_fraction: float, seed: int
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Split so that no prompt appears on both sides. Within each source, prompt groups are taken for the
    test side in a seeded order until the source's share is reached; a prompt shared by two sources goes
    to test everywhere once it is test anywhere."""
    if test_fraction <= 0:
        return list(pairs), []
    by_source: dict[str, dict[str, list[PreferencePair]]] = defaultdict(lambda: defaultdict(list))
    for p in pairs:
        by_source[p.source][p.prompt_key()].append(p)
    test_keys: set[str] = set()
    for groups in by_source.values():
        n = sum(len(g) for g in groups.values())
        target = round(n * test_fraction)
        taken = 0
        for key in sorted(groups, key=lambda k: _unit(seed, k)):
            if taken >= target:
                break
            test_keys.add(key)
            taken += len(groups[key])
    train = [p for p in pairs if p.prompt_key() not in test_keys]
    test = [p for p in pairs if p.prompt_key() in test_keys]
    return train, test


def build_pairs(cfg: DataConfig) -> PairSplit:
    """Load every source, mix by weight, split prompt-disjointly. Every dropped row is in the report."""
    report = DropReport()
    rng = random.Random(cfg.seed)
    loaded: dict[str, list[PreferencePair]] = {}
    for src in cfg.sources:
        pairs = load_source(src, cfg.root, report, strict=cfg.strict, max_text_chars=cfg.max_text_chars)
        if src.max_pairs is not None and len(pairs) > src.max_pairs:
            report.notes.append(
                f"{src.name}: subsampled {src.max_pairs} of {len(pairs)} usable pairs (max_pairs)"
            )
            pairs = rng.sample(pairs, src.max_pairs)
        loaded[src.name] = pairs
    want = quotas(
        {s: len(p) for s, p in loaded.items()}, {s.name: s.weight for s in cfg.sources}, cfg.n_pairs
    )
    mixed: list[PreferencePair] = []
    for src in cfg.sources:
        pairs, n = loaded[src.name], want[src.name]
        if cfg.n_pairs is not None:
            share = cfg.n_pairs * src.weight / max(sum(s.weight for s in cfg.sources), 1e-12)
            if n < round(share):
                report.notes.append(f"{src.name}: wanted {round(share)} pairs by weight, only {n} usable")
            if n < len(pairs):
                report.notes.append(f"{src.name}: took {n} of {len(pairs)} usable pairs (mix by weight)")
        mixed.extend(rng.sample(pairs, n) if n < len(pairs) else pairs)
    train, test = prompt_disjoint_split(mixed, cfg.test_fraction, cfg.seed)
    rng.shuffle(train)
    rng.shuffle(test)
    return PairSplit(train, test, report)
