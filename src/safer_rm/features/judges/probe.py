"""A labelled probe set for measuring a judge: pseudo-latents whose contexts are plainly safety-related
(harmful requests and answers, refusals) or plainly unrelated (cooking, grammar, sports, ...), cut from real
text of the offline mirror by a fixed procedure:

1. For each concept, scan the listed files in order (prompts, then chosen, then rejected responses of
   every row) for the first whole-word match of any of the concept's keywords (case-insensitive).
2. Each match gives a context: up to 150 characters on each side, the matched word as the token, and an
   activation decreasing with the order found (so contexts are ranked as a real latent's would be).
3. Every 6 consecutive contexts of a concept form one pseudo-latent; 3 latents per concept.

12 safety concepts x 3 = 36 positive latents, 10 ordinary concepts x 3 = 30 negative latents (66 in all).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..types import Context, LatentContexts

SAFETY_FILES = ("train/pku-saferlhf-5k.jsonl", "train/hh-rlhf/harmless-base/test.jsonl.gz")
ORDINARY_FILES = ("train/alpacaeval-gpt4-judged-odd-half.jsonl", "train/pandalm-human.jsonl")
SAFETY = {
    "weapons": ["gun", "guns", "firearm", "bomb", "explosive"],
    "drugs": ["cocaine", "heroin", "meth", "methamphetamine", "marijuana"],
    "violence": ["kill", "murder", "assault", "stab"],
    "theft": ["steal", "shoplift", "rob", "burglary"],
    "hacking": ["hack", "hacking", "malware", "phishing"],
    "fraud": ["scam", "fraud", "counterfeit", "launder"],
    "refusal": ["sorry", "cannot", "can't", "won't"],
    "illegal": ["illegal", "unlawful", "crime", "criminal"],
    "self_harm": ["suicide", "self-harm", "overdose"],
    "hate": ["racist", "slur", "hate", "offensive"],
    "privacy": ["address", "stalk", "spy", "ssn"],
    "poison": ["poison", "poisoning", "toxic"],
}
ORDINARY = {
    "cooking": ["recipe", "bake", "ingredients", "oven"],
    "grammar": ["grammar", "noun", "verb", "adjective"],
    "sports": ["football", "basketball", "soccer", "tennis"],
    "travel": ["travel", "vacation", "hotel", "tourist"],
    "math": ["equation", "calculate", "multiply", "fraction"],
    "programming": ["python", "javascript", "function", "array"],
    "music": ["music", "song", "guitar", "melody"],
    "science": ["planet", "molecule", "photosynthesis", "gravity"],
    "business": ["marketing", "customer", "revenue", "startup"],
    "weather": ["weather", "rain", "sunny", "temperature"],
}
PER_LATENT, LATENTS_PER_CONCEPT, WINDOW = 6, 3, 150


def _texts(root: Path, files: tuple[str, ...]):
    from ...data.readers import iter_file_rows

    for rel in files:
        for row, _loc in iter_file_rows(root / rel):
            for key in ("prompt", "chosen", "rejected"):
                value = row.get(key) if isinstance(row, dict) else None
                if isinstance(value, str):
                    yield value


def _contexts(root: Path, files: tuple[str, ...], keywords: list[str], n: int) -> list[Context]:
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in keywords) + r")\b", re.IGNORECASE)
    out, seen = [], set()
    for text in _texts(root, files):
        m = pattern.search(text)
        if not m:
            continue
        left, right = text[max(0, m.start() - WINDOW):m.start()], text[m.end():m.end() + WINDOW]
        key = (left[-40:], m.group(0), right[:40])
        if key in seen:
            continue
        seen.add(key)
        out.append(Context(token=m.group(0), activation=float(10 - len(out) % PER_LATENT), left=left, right=right))
        if len(out) >= n:
            break
    return out


def build_probe(root: str | Path) -> tuple[list[LatentContexts], np.ndarray]:
    """(pseudo-latents, labels: 1 safety, 0 ordinary). Raises FileNotFoundError without the mirror."""
    root = Path(root)
    for rel in SAFETY_FILES + ORDINARY_FILES:
        if not (root / rel).is_file():
            raise FileNotFoundError(root / rel)
    items, labels = [], []
    latent = 0
    for concepts, files, label in ((SAFETY, SAFETY_FILES, 1), (ORDINARY, ORDINARY_FILES, 0)):
        for _name, keywords in concepts.items():
            contexts = _contexts(root, files, keywords, PER_LATENT * LATENTS_PER_CONCEPT)
            for i in range(0, len(contexts) - PER_LATENT + 1, PER_LATENT):
                items.append(LatentContexts(latent, contexts[i:i + PER_LATENT]))
                labels.append(label)
                latent += 1
    return items, np.array(labels)


def probe_auroc(judge, items: list[LatentContexts], labels: np.ndarray) -> dict:
    """AUROC of the judge's scores (unscored latents count as 0) for telling safety from ordinary latents."""
    from ...experiment.audit import auroc

    verdicts = judge.judge(items)
    scores = np.array([v.score if v.score is not None else 0.0 for v in verdicts])
    return {"auroc": auroc(scores, labels.astype(bool)), "latents": len(items), "positive": int(labels.sum()),
            "scored": int(sum(v.score is not None for v in verdicts)),
            "mean_score_safety": float(scores[labels == 1].mean()), "mean_score_ordinary": float(scores[labels == 0].mean())}


def dump_probe(items: list[LatentContexts], labels: np.ndarray, path: str | Path) -> None:
    from dataclasses import asdict

    Path(path).write_text(json.dumps([{"label": int(lab), **asdict(it)} for it, lab in zip(items, labels)],
                                     ensure_ascii=False, indent=1), encoding="utf-8")
