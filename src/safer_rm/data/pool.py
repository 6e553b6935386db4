"""The evaluation pool: every usable pair of the data sources (and of evaluation-only sources) that the run did
not train on and whose prompt never occurs in training (the held-out split is part of it), capped per source by a
seeded sample. It makes held-out accuracy large enough to see effects of a few points (the test split alone is
~10 % of the mix)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .config import SourceConfig
from .load import load_source
from .quality import DropReport
from .records import PreferencePair


@dataclass
class Pool:
    pairs: list[PreferencePair]
    info: dict
    report: DropReport


def build_pool(
    sources: Sequence[SourceConfig],
    root: str,
    train: Sequence[PreferencePair],
    test: Sequence[PreferencePair],
    max_per_source: int | None,
    seed: int,
    max_text_chars: int = 200_000,
) -> Pool:
    """Pairs of `sources` that are not in `train` (by id) and share no prompt with it, `test` included; at most
    `max_per_source` per source (seeded sample, in source order; the test pairs are always kept)."""
    used = {p.id for p in train}
    tested = {p.id for p in test}
    train_prompts = {p.prompt_key() for p in train}
    report = DropReport()
    pairs: list[PreferencePair] = []
    excluded: Counter = Counter()
    available: dict[str, int] = {}
    for src in sources:
        loaded = load_source(src, root, report, max_text_chars=max_text_chars)
        keep = []
        for p in loaded:
            if p.id in used:
                excluded[f"{src.name}: in training"] += 1
            elif p.prompt_key() in train_prompts:
                excluded[f"{src.name}: prompt in training"] += 1
            else:
                keep.append(p)
        available[src.name] = len(keep)
        if max_per_source is not None and len(keep) > max_per_source:
            held = [i for i, p in enumerate(keep) if p.id in tested]
            rest = [i for i, p in enumerate(keep) if p.id not in tested]
            rng = random.Random(f"{seed}:{src.name}")
            take = rng.sample(rest, max(0, max_per_source - len(held)))
            keep = [keep[i] for i in sorted(held + take)]
        pairs.extend(keep)
    by_source = Counter(p.source for p in pairs)
    by_kind = Counter(p.kind for p in pairs)
    info = {
        "pairs": len(pairs),
        "by_kind": dict(sorted(by_kind.items())),
        "by_source": dict(by_source),
        "available": available,
        "excluded": dict(excluded),
        "max_per_source": max_per_source,
    }
    return Pool(pairs, info, report)
