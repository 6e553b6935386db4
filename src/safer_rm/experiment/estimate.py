"""What each stage of a plan is expected to put on disk and hold in memory, from the config's sizes, printed by
`--dry-run` before anything runs (no torch imported). The runner records what each stage used (disk.py,
resources.py) beside it in the manifest, so an estimate can be checked against its run.

Sizes come from the model's config.json (a local folder, the embedded MiniLM, the hub's local cache, or a
built-in table of the profiles' backbones) and from the prepared data (`data/train.jsonl` once the data
stage ran: pairs by kind and their lengths in characters, about 4 a token, clipped to `model.max_length`);
before it ran, from the config's caps (`data.n_pairs`, each source's `max_pairs` or a local JSON-lines file's rows) at `model.max_length`
tokens a sequence, an upper bound. The arithmetic, per instance:
- train-rm: the saved model (4 bytes a parameter) and, while it trains, up to two checkpoints (weights and
  Adam's two moments of the trainable parameters, 12 bytes each); the first also fills the prefix cache of
  frozen states (4 or 2 bytes x width x every token). Memory: 16 bytes a trainable parameter, 4 (2 in bf16
  weights) a frozen one, and activations of one micro-batch (about 34 bytes x width x tokens a block, 2 with
  gradient checkpointing).
- extract: the caches' vectors (width x dtype) plus 21 bytes of index a vector and 4 bytes a token; the
  stage-1 cache only with `activations.general_source: cache`.
- train-sae: the SAE twice (sparsify's and SAE Lens's layouts), 4 bytes x (2 x width x latents); memory: the
  SAE with its gradients and Adam state, a batch's latents, and the streamed buffer.
- attribute: about 3 x k latents a kept vector, 16 bytes each; curate: a copy of the training set; audit: its
  fold and ensemble reward models and a second set of caches. Others: small.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..data.load import expand
from ..models.embedded import EMBEDDED
from . import artifacts as A

CHARS_PER_TOKEN = 4.0
TEMPLATE_TOKENS = 8  # a chat template's role markers around a turn
KNOWN_SHAPES = {  # backbones of the profiles whose config.json may not be on this machine: (params, width, blocks)
    "meta-llama/llama-3.2-1b-instruct": (1_235_814_400, 2048, 16),
    "meta-llama/llama-3.2-1b": (1_235_814_400, 2048, 16),
    "smollm2": (134_515_008, 576, 30),
}


@dataclass(frozen=True)
class Shape:
    params: int
    width: int
    blocks: int
    source: str


@dataclass(frozen=True)
class DataSizes:
    train: int
    test: int
    chat: int
    tokens: float
    """mean tokens of a rendered sequence (prompt and one response)"""
    response_tokens: float
    sentence_ends: float
    """mean kept sentence ends of a response"""
    source: str
    text_bytes: int
    """size of the training set as JSON lines"""


def params_of(config: dict) -> tuple[int, int, int]:
    """(parameters, width, blocks) of a transformer from its config.json (attention, MLP, embeddings)."""
    c = config.get("text_config", config)
    h = int(c.get("hidden_size") or c.get("n_embd") or c.get("d_model"))
    n = int(c.get("num_hidden_layers") or c.get("n_layer") or c.get("num_layers"))
    inner = int(c.get("intermediate_size") or c.get("n_inner") or 4 * h)
    heads = int(c.get("num_attention_heads") or c.get("n_head") or 1)
    kv = int(c.get("num_key_value_heads") or heads)
    gated = c.get("model_type") in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "olmo", "phi3")
    attn = 2 * h * h + 2 * h * (h * kv // heads)
    mlp = (3 if gated else 2) * h * inner
    embed = int(c.get("vocab_size", 0)) * h + int(c.get("max_position_embeddings", 0) if not gated else 0) * h
    return n * (attn + mlp) + embed + h, h, n


def model_shape(name: str) -> Shape | None:
    key = EMBEDDED.get(name.lower())
    candidates: list[Path] = []
    if key == "minilm":
        from ..models.embedded import minilm_path

        candidates.append(minilm_path() / "config.json")
    elif key is None:
        candidates.append(Path(name).expanduser() / "config.json")
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "config.json")
            if isinstance(cached, str):
                candidates.append(Path(cached))
        except (ImportError, ValueError):
            pass
    for path in candidates:
        if path.is_file():
            return Shape(*params_of(json.loads(path.read_text(encoding="utf-8"))), str(path))
    known = KNOWN_SHAPES.get(key or name.lower())
    return Shape(*known, "built-in table") if known else None


def _text(value) -> str:
    if isinstance(value, list):
        return " ".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    return str(value or "")


def _lines(path: str | None) -> int | None:
    """Rows of a local JSON-lines file (a source's most pairs), None for anything else."""
    p = Path(path or "")
    if p.suffix != ".jsonl" or not p.is_file():
        return None
    with p.open("rb") as fh:
        return sum(1 for _ in fh)


def data_sizes(root: Path, cfg) -> DataSizes | None:
    """From the prepared data where the data stage ran, else the config's caps at `model.max_length`."""
    max_len, gap = cfg.model.max_length, cfg.activations.min_gap
    train, test = root / A.TRAIN, root / A.TEST
    if train.is_file():
        n = chat = 0
        tokens = response = ends = 0.0
        for line in train.open(encoding="utf-8"):
            row = json.loads(line)
            n += 1
            chat += row.get("kind") == "chat"
            prompt = len(_text(row.get("prompt"))) / CHARS_PER_TOKEN + TEMPLATE_TOKENS
            for side in ("chosen", "rejected"):
                text = _text(row.get(side))
                resp = min(len(text) / CHARS_PER_TOKEN + 1, max_len)
                tokens += min(prompt + resp, max_len)
                response += resp
                marks = sum(text.count(m) for m in (". ", "! ", "? ", "\n")) + 1
                ends += min(marks, resp / gap + 1)
        n_test = sum(1 for _ in test.open(encoding="utf-8")) if test.is_file() else 0
        sides = max(1, 2 * n)
        return DataSizes(
            n, n_test, chat, tokens / sides, response / sides, ends / sides, str(train), train.stat().st_size
        )
    caps = [
        s.max_pairs if s.max_pairs is not None else _lines(expand(s.path, cfg.data.root))
        for s in cfg.data.sources
    ]
    total = cfg.data.n_pairs or (sum(caps) if all(c is not None for c in caps) else None)
    if total is None:
        return None
    n_chat = sum(c or 0 for s, c in zip(cfg.data.sources, caps) if s.kind == "chat")
    test = int(total * cfg.data.test_fraction)
    resp = max_len / 2
    text = int(2 * total * max_len * CHARS_PER_TOKEN)
    return DataSizes(total - test, test, min(n_chat, total), max_len, resp, resp / gap, "config caps", text)
