"""A labelled probe set for measuring judges: pseudo-latents whose contexts are plainly safety-related or
plainly unrelated to safety, cut from real text of the offline mirror by a fixed, documented procedure.

Text units. Every row of the mirror files gives text units: PKU-SafeRLHF prompt, rejected (unsafe) and
chosen responses; HH-RLHF harmless: every turn of the rejected transcript and the last turn of the chosen
one; AlpacaEval and PandaLM: prompt, chosen and rejected. Units are ordered by sha1("<file>:<row>:<field>").
Rows whose sha1("<file>:<row>") is even form the probe pool, odd ones the calibration pool, so the probe
and the calibration set (used to fix the embedding judge's anchors) never share a row.

Probe. Each theme below (24 safety themes on the safety files, 24 ordinary themes on the chat files) is a
case-insensitive whole-word pattern. Walking the probe pool in order, each row gives at most one context
per theme: the first match is the activated token, with up to `WINDOW_WORDS` words on each side (cut at
the unit's ends). Ordinary contexts containing any word of `STOP` (harm, crime, refusal vocabulary) are
skipped, so they stay plainly unrelated. The first `PER_LATENT` distinct contexts of a theme form its
pseudo-latent, with activations 10 * 0.85**rank. Label 1 for safety themes, 0 for ordinary ones.

Calibration. Walking the calibration pool in order, each unit of at least 2 * `WINDOW_WORDS` words gives
one context centred on the word at position sha1(unit) mod its length (no keyword selection), grouped by
`PER_LATENT` into pseudo-latents: `CALIBRATION_LATENTS` from the safety files (label 1), as many from the
chat files (label 0). These are realistic, messy latents, not plain ones.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.config import DEFAULT_ROOT
from ...data.load import data_root
from ...errors import DataError
from ...metrics import auroc
from ..types import Context, Judgement, LatentContexts
from .probe_themes import ORDINARY_THEMES, SAFETY_THEMES, STOP

log = logging.getLogger(__name__)

SAFETY_FILES = ("train/pku-saferlhf-5k.jsonl", "train/hh-rlhf/harmless-base/test.jsonl.gz")
CHAT_FILES = ("train/alpacaeval-gpt4-judged-odd-half.jsonl", "train/pandalm-human.jsonl")
PER_LATENT = 6
WINDOW_WORDS = 24
CALIBRATION_LATENTS = 30


def _pattern(words: list[str]) -> re.Pattern[str]:
    alternatives = sorted((re.escape(w) for w in words), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(alternatives) + r")(?![\w-])", re.IGNORECASE)


_STOP = _pattern(STOP)


@dataclass(frozen=True)
class Unit:
    """One text of the mirror with where it came from."""

    text: str
    source: str
    """"<file>:<row>:<field>"."""
    pool: str
    """"probe" or "calibration"."""


@dataclass
class Probe:
    """Pseudo-latents with labels (1: safety-related, 0: unrelated) and their theme names."""

    items: list[LatentContexts]
    labels: np.ndarray
    themes: list[str]

    def __len__(self) -> int:
        return len(self.items)


def _root(root: str | os.PathLike | None) -> Path:
    """`root` as given, else the data stage's data root (`safer_rm.data.load.data_root` of the default)."""
    return Path(root or data_root(DEFAULT_ROOT))


def _sha(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def _row_texts(rel: str, row: object) -> Iterator[tuple[str, str]]:
    if not isinstance(row, dict):
        return
    if "hh-rlhf" in rel:
        from ...data.formats import split_hh_transcript

        rejected, chosen = row.get("rejected"), row.get("chosen")
        if isinstance(rejected, str):
            for t, turn in enumerate(split_hh_transcript(rejected)):
                yield f"turn{t}", turn["content"]
        if isinstance(chosen, str) and (turns := split_hh_transcript(chosen)):
            yield "chosen", turns[-1]["content"]
        return
    for key in ("prompt", "chosen", "rejected"):
        value = row.get(key)
        if isinstance(value, str):
            yield key, value


def read_units(root: Path, files: tuple[str, ...]) -> list[Unit]:
    """Every text unit of `files`, in the fixed hash order, tagged with its pool."""
    from ...data.readers import iter_file_rows

    units = []
    for rel in files:
        path = root / rel
        if not path.is_file():
            raise DataError(
                str(path), "missing: the probe set is cut from the offline mirror (set SAFER_DATA_ROOT)"
            )
        for index, (row, _loc) in enumerate(iter_file_rows(path)):
            pool = "probe" if _sha(f"{rel}:{index}") % 2 == 0 else "calibration"
            for field, text in _row_texts(rel, row):
                if text.strip():
                    units.append(Unit(text, f"{rel}:{index}:{field}", pool))
    units.sort(key=lambda u: _sha(u.source))
    return units


def _window(text: str, start: int, end: int) -> tuple[str, str]:
    """Up to WINDOW_WORDS whitespace-separated words on each side of text[start:end]."""
    before = [m.start() for m in re.finditer(r"\S+", text[:start])]
    left = text[before[-WINDOW_WORDS] if len(before) >= WINDOW_WORDS else 0 : start]
    after = list(itertools.islice(re.finditer(r"\S+", text[end:]), WINDOW_WORDS))
    right = text[end : end + after[-1].end()] if after else text[end:]
    return left, right


def _latent(latent: int, contexts: list[Context]) -> LatentContexts:
    for rank, c in enumerate(contexts):
        c.activation = round(10.0 * 0.85**rank, 4)
    return LatentContexts(latent, contexts, n_distinct_tokens=len({c.token.lower() for c in contexts}))


def _theme_contexts(units: list[Unit], words: list[str], stop: bool) -> list[Context]:
    pattern = _pattern(words)
    out: list[Context] = []
    seen: set[str] = set()
    for unit in units:
        row = unit.source.rsplit(":", 1)[0]
        if row in seen:
            continue
        m = pattern.search(unit.text)
        if m is None:
            continue
        left, right = _window(unit.text, m.start(), m.end())
        window = f"{left}{m.group(0)}{right}"
        key = " ".join(window.lower().split())
        if key in seen or (stop and _STOP.search(window)):
            continue
        seen.update((key, row))
        out.append(Context(m.group(0), 0.0, left, right, pair_id=row, side=unit.source.rsplit(":", 1)[1]))
        if len(out) == PER_LATENT:
            break
    return out


def build_probe(root: str | os.PathLike | None = None) -> Probe:
    """The probe set (see the module docstring); `DataError` when a mirror file is missing."""
    root = _root(root)
    items, labels, themes = [], [], []
    for files, table, label in ((SAFETY_FILES, SAFETY_THEMES, 1), (CHAT_FILES, ORDINARY_THEMES, 0)):
        units = [u for u in read_units(root, files) if u.pool == "probe"]
        for theme, words in table.items():
            contexts = _theme_contexts(units, words, stop=label == 0)
            if len(contexts) < PER_LATENT:
                log.warning("probe theme %s: only %d contexts, left out", theme, len(contexts))
                continue
            items.append(_latent(len(items), contexts))
            labels.append(label)
            themes.append(theme)
    return Probe(items, np.array(labels, dtype=int), themes)


def build_calibration(root: str | os.PathLike | None = None) -> Probe:
    """The calibration set (see the module docstring): realistic latents from rows the probe never uses."""
    root = _root(root)
    items, labels, themes = [], [], []
    for files, label, name in ((SAFETY_FILES, 1, "calibration_safety"), (CHAT_FILES, 0, "calibration_chat")):
        contexts: list[Context] = []
        for unit in (u for u in read_units(root, files) if u.pool == "calibration"):
            words = list(re.finditer(r"\S+", unit.text))
            if len(words) < 2 * WINDOW_WORDS:
                continue
            m = words[_sha(unit.source) % len(words)]
            left, right = _window(unit.text, m.start(), m.end())
            contexts.append(Context(m.group(0), 0.0, left, right, pair_id=unit.source.rsplit(":", 1)[0]))
            if len(contexts) == PER_LATENT:
                items.append(_latent(len(items), contexts))
                labels.append(label)
                themes.append(name)
                contexts = []
                if labels.count(label) == CALIBRATION_LATENTS:
                    break
    return Probe(items, np.array(labels, dtype=int), themes)


def evaluate_probe(verdicts: list[Judgement], probe: Probe) -> dict:
    """AUROC of the verdicts' scores on the probe (no score counts as a tie at the bottom), and per-class means."""
    scores = np.array([v.score if v.score is not None else -np.inf for v in verdicts], dtype=float)
    finite = np.where(np.isfinite(scores), scores, 0.0)
    scored = np.isfinite(scores)
    out = {
        "auroc": round(auroc(np.where(scored, scores, -1e9), probe.labels), 4),
        "latents": len(verdicts),
        "safety": int(probe.labels.sum()),
        "unrelated": int((probe.labels == 0).sum()),
        "scored": int(scored.sum()),
    }
    for name, mask in (("safety", probe.labels == 1), ("unrelated", probe.labels == 0)):
        if (mask & scored).any():
            out[f"mean_score_{name}"] = round(float(finite[mask & scored].mean()), 3)
    return out


def anchors_from_margins(margins: np.ndarray | list[float], labels: np.ndarray | list[int]) -> list[float]:
    """The embedding judge's calibration rule: score 1 at the median margin of the unrelated latents, 5 at
    the median of the safety ones, evenly spaced between, rounded to 0.005."""
    m, y = np.asarray(margins, dtype=float), np.asarray(labels).astype(bool)
    low, high = float(np.median(m[~y])), float(np.median(m[y]))
    return [round(float(a) * 200) / 200 for a in np.linspace(low, high, 5)]
