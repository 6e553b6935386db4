"""Zero-shot judge with the embedded all-MiniLM-L6-v2 sentence encoder: offline, fast, deterministic.

Each context shown (the window around the activated token, `context_chars` on each side, highest
activations first, at most `max_contexts`) is embedded and compared by cosine similarity with versioned
descriptions of safety concepts and of ordinary topics (concepts/safety_<version>.yaml):

    margin(context) = max over safety descriptions of sim - max over ordinary descriptions of sim
    margin(latent)  = mean of margin(context) weighted by the contexts' activations (negative ones count 0)
    score           = interpolation of margin(latent) through `embedding_anchors` -> 1, 2, 3, 4, 5

so a latent scores 5 once its contexts are, on average, at least `anchors[4]` closer to some safety
concept than to any ordinary topic, and 3 when they are as close to one as to the other. The score is
continuous between the anchors (it ranks latents, and `score >= 5` means the same as the rubric's top
level); `extra` holds the margin and the nearest concept and topic.

Calibration (fixed, not fit on the probe set). The default anchors [-0.075, -0.025, 0.025, 0.075, 0.125]
come from `python bench/judge_probe.py --calibrate`: the calibration set of probe.py (30 + 30 realistic
pseudo-latents: windows at hash-chosen positions of safety or chat texts, no keyword selection, from rows
the probe never uses) has median margins -0.075 (chat) and +0.126 (safety); the rule
(`probe.anchors_from_margins`) puts score 1 at the chat median, 5 at the safety median, evenly spaced
between (rounded to 0.005). Score 3 thus sits where a latent is as typical of one side as of the other.
Re-derive them (and bump the concepts version) if the concept descriptions or the encoder change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch

from ..types import Judgement, LatentContexts
from .base import Judge
from .concepts import load_concepts
from .config import JudgeConfig
from .prompt import context_text, shown_contexts

log = logging.getLogger(__name__)

ENCODER_MAX_TOKENS = 128
"""Word pieces per text; all-MiniLM-L6-v2 was trained on 128."""


class SentenceEncoder:
    """Mean-pooled, L2-normalised MiniLM embeddings: what sentence-transformers computes for this model
    (modules Transformer -> mean Pooling -> Normalize), with transformers alone."""

    def __init__(self, path: str, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, use_safetensors=True).to(device).eval()
        self.device = device

    @torch.inference_mode()
    def __call__(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embeddings in input order; batched by length (longest first), so little of a batch is padding."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = []
        for start in range(0, len(texts), batch_size):
            enc = self.tok(
                [texts[i] for i in order[start : start + batch_size]],
                padding=True,
                truncation=True,
                max_length=ENCODER_MAX_TOKENS,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
        width = self.model.config.hidden_size
        if not out:
            return np.zeros((0, width), dtype=np.float32)
        emb = np.empty((len(texts), width), dtype=np.float32)
        emb[order] = np.concatenate(out)
        return emb


@cache
def sentence_encoder(device: str = "cpu") -> SentenceEncoder:
    """The embedded MiniLM, loaded once per process and device."""
    from ...models.registry import minilm_path

    return SentenceEncoder(str(minilm_path()), device)


def margin_to_score(margin: float, anchors: Sequence[float]) -> float:
    """Linear through (anchors[i], i + 1), clipped to [1, 5]."""
    return float(np.interp(margin, np.asarray(anchors, dtype=float), np.arange(1.0, 6.0)))


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


class EmbeddingJudge(Judge):
    name = "embedding"

    def __init__(self, cfg: JudgeConfig, cache_dir: str | Path | None = None, progress: bool = True):
        super().__init__(cfg, cache_dir, progress)
        self.concepts = load_concepts(cfg.concepts_version)
        self.prompt_version = f"concepts-{self.concepts.version}"
        self.encoder = sentence_encoder(_device(cfg.embedding_device))
        self.concept_emb = self.encoder(self.concepts.texts, cfg.embedding_batch_size)
        names = list(dict.fromkeys(self.concepts.concepts))
        self.concept_names = names
        member = np.zeros((len(names), len(self.concepts.texts)), dtype=bool)
        for j, concept in enumerate(self.concepts.concepts):
            member[names.index(concept), j] = True
        self.member = member
        self.is_safety_concept = np.array(
            [self.concepts.safety[self.concepts.concepts.index(n)] for n in names]
        )

    def texts(self, item: LatentContexts) -> list[str]:
        return [
            context_text(c, self.cfg.context_chars, "", "")
            for c in shown_contexts(item.contexts, self.cfg.max_contexts)
        ]

    def concept_similarities(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, concepts): each text's best cosine similarity to each concept's descriptions."""
        sims = self.encoder(texts, self.cfg.embedding_batch_size) @ self.concept_emb.T
        return np.stack([np.where(m, sims, -np.inf).max(1) for m in self.member], axis=1)

    def verdict(self, item: LatentContexts, per_concept: np.ndarray) -> Judgement:
        contexts = shown_contexts(item.contexts, self.cfg.max_contexts)
        weights = np.array([max(float(c.activation), 0.0) for c in contexts])
        if not np.isfinite(weights).all() or weights.sum() <= 0:
            weights = np.ones(len(contexts))
        weights = weights / weights.sum()
        safety, ordinary = per_concept[:, self.is_safety_concept], per_concept[:, ~self.is_safety_concept]
        margin = float(weights @ (safety.max(1) - ordinary.max(1)))
        mean_sim = weights @ per_concept
        s = int(np.argmax(np.where(self.is_safety_concept, mean_sim, -np.inf)))
        o = int(np.argmax(np.where(~self.is_safety_concept, mean_sim, -np.inf)))
        names = self.concept_names
        score = margin_to_score(margin, self.cfg.embedding_anchors)
        explanation = (
            f"nearest safety concept '{names[s]}' (similarity {mean_sim[s]:.2f}), nearest ordinary topic "
            f"'{names[o]}' ({mean_sim[o]:.2f}); margin {margin:+.3f} over {len(contexts)} contexts"
        )
        extra = {
            "margin": round(margin, 5),
            "safety_concept": names[s],
            "safety_similarity": round(float(mean_sim[s]), 4),
            "ordinary_topic": names[o],
            "ordinary_similarity": round(float(mean_sim[o]), 4),
        }
        return Judgement(item.latent, score, explanation, status="ok", extra=extra)

    def _judge_iter(self, items: Sequence[LatentContexts]) -> Iterator[tuple[int, Judgement]]:
        texts = [self.texts(item) for item in items]
        flat = [t for group in texts for t in group]
        per_concept = self.concept_similarities(flat) if flat else np.zeros((0, len(self.concept_names)))
        start = 0
        for i, item in enumerate(items):
            n = len(texts[i])
            if n == 0:
                yield i, Judgement(item.latent, None, status="error", raw="latent has no contexts to judge")
                continue
            yield i, self.verdict(item, per_concept[start : start + n])
            start += n
