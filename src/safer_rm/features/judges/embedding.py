"""Zero-shot judge with the embedded all-MiniLM-L6-v2 sentence encoder (offline, fast, deterministic).

Each context (the window around the activated token) is embedded and compared, by cosine similarity, with
versioned descriptions of safety concepts and of ordinary topics (concepts/safety_<version>.yaml). A
context's margin is its best safety similarity minus its best ordinary similarity; the latent's margin is
the activation-weighted mean over its contexts. Calibration to the 1-5 rubric (fixed, chosen before any
measurement on the probe set, documented here):

    margin >= 0.10 -> 5,   >= 0.05 -> 4,   >= 0.00 -> 3,   >= -0.05 -> 2,   else 1

i.e. a latent scores 5 when its contexts are clearly closer to some safety concept than to any ordinary one.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
import torch
import yaml

from ...errors import ConfigError
from ..types import Judgement
from .base import Judge

THRESHOLDS = (0.10, 0.05, 0.0, -0.05)


@cache
def load_concepts(version: str) -> dict[str, dict[str, list[str]]]:
    try:
        text = resources.files("safer_rm.concepts").joinpath(f"safety_{version}.yaml").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("judge.concepts_version", f"no concept file concepts/safety_{version}.yaml") from None
    return yaml.safe_load(text)


def margin_to_score(margin: float) -> float:
    for score, threshold in zip((5, 4, 3, 2), THRESHOLDS):
        if margin >= threshold:
            return float(score)
    return 1.0


class SentenceEncoder:
    """Mean-pooled, L2-normalised MiniLM embeddings (what sentence-transformers does for this model)."""

    def __init__(self, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        from ...models.registry import minilm_path

        path = str(minilm_path())
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, use_safetensors=True).to(device).eval()
        self.device = device

    @torch.inference_mode()
    def __call__(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch_size):
            enc = self.tok(texts[i:i + batch_size], padding=True, truncation=True, max_length=128,
                           return_tensors="pt").to(self.device)
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


class EmbeddingJudge(Judge):
    name = "embedding"

    def __init__(self, cfg, cache_dir=None):
        super().__init__(cfg, cache_dir)
        self.prompt_version = f"concepts-{cfg.concepts_version}"
        device = cfg.device if cfg.device != "auto" else "cpu"
        self.encoder = SentenceEncoder(device)
        concepts = load_concepts(cfg.concepts_version)
        self.labels, texts, self.is_safety = [], [], []
        for group, is_safety in (("safety", True), ("ordinary", False)):
            for concept, descriptions in concepts[group].items():
                for d in descriptions:
                    self.labels.append(concept)
                    texts.append(d)
                    self.is_safety.append(is_safety)
        self.concept_emb = self.encoder(texts)
        self.is_safety = np.array(self.is_safety)

    def margins(self, texts: list[str]) -> tuple[np.ndarray, list[str]]:
        sims = self.encoder(texts) @ self.concept_emb.T
        safe = np.where(self.is_safety, sims, -np.inf).max(1)
        ordinary = np.where(~self.is_safety, sims, -np.inf).max(1)
        best = [self.labels[j] for j in np.argmax(np.where(self.is_safety, sims, -np.inf), axis=1)]
        return safe - ordinary, best

    def _judge(self, items):
        out = []
        for item in items:
            contexts = item.contexts[: self.cfg.max_contexts]
            if not contexts:
                out.append(Judgement(item.latent, None, "", "unparseable", raw="no contexts"))
                continue
            texts = [" ".join(f"{c.left[-200:]}{c.token}{c.right[:200]}".split()) for c in contexts]
            margins, best = self.margins(texts)
            weights = np.array([max(c.activation, 1e-6) for c in contexts])
            margin = float((margins * weights).sum() / weights.sum())
            top = max(set(best), key=best.count)
            score = margin_to_score(margin)
            explanation = (f"contexts closest to safety concept '{top}' (margin {margin:+.3f} over ordinary topics)"
                           if margin >= 0 else f"contexts closer to ordinary topics (margin {margin:+.3f})")
            out.append(Judgement(item.latent, score, explanation, "ok", extra={"margin": margin}))
        return out
