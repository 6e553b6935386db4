"""Per-stage arithmetic of the dry-run's estimate (the model and assumptions are in estimate.py's docstring),
and the table `--dry-run` prints under the plan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .estimate import DataSizes, Shape, data_sizes, model_shape

INDEX_BYTES = 21  # a cached vector's mean, std, pair, side, position and token
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
SMALL = 1 << 20
BASE_RSS = 1_500_000_000  # a stage process's resident size before its own work (Python, torch, data)  # what the stages without a large artifact are taken to write


@dataclass(frozen=True)
class Need:
    disk: int
    """bytes the stage leaves in the run folder"""
    peak: int
    """bytes more than `disk` that exist while it runs (checkpoints)"""
    memory: int
    """bytes of RAM, or of GPU memory where the run uses CUDA"""


def _cache(vectors: float, width: int, dtype: str, tokens: float) -> int:
    return int(vectors * (width * DTYPE_BYTES[dtype] + INDEX_BYTES) + 4 * tokens)


def _rm_memory(cfg, shape: Shape, tokens: float) -> int:
    rm = cfg.rm
    frozen = shape.params * rm.freeze_layers // max(1, shape.blocks)
    trainable = shape.params - frozen
    per_block = 2 if rm.gradient_checkpointing else 34
    live = shape.blocks - rm.freeze_layers
    act = 2 * rm.batch_size * tokens * shape.width * (per_block * live + 34)
    return int(16 * trainable + 4 * frozen + act)


def _inference(shape: Shape, batch: int, tokens: float) -> int:
    return int(4 * shape.params + 8 * batch * tokens * shape.width * 4)


def stage_needs(cfg, shape: Shape, data: DataSizes) -> dict[str, Need]:
    """One instance of each stage."""
    ac, sc, rm = cfg.activations, cfg.sae, cfg.rm
    width, seqs = shape.width, 2 * data.train
    latents = sc.num_latents or sc.expansion * width
    model = 4 * shape.params
    trainable = shape.params - shape.params * rm.freeze_layers // max(1, shape.blocks)
    checkpoint = model + 8 * trainable
    kept = 2 if rm.select_best else 1
    checkpoints = kept * checkpoint if (rm.select_best or rm.save_checkpoints) else 0
    per_side = {"all": data.tokens, "response": data.response_tokens, "last": 1.0}
    vectors = per_side.get(ac.positions, data.sentence_ends) * seqs
    heldout = per_side.get(ac.positions, data.sentence_ends) * 2 * data.test
    chat_seqs = 2 * (data.chat if ac.general_kind == "chat" else data.train)
    general = per_side.get(ac.general_positions, data.sentence_ends) * chat_seqs
    caches = _cache(vectors, width, ac.dtype, data.tokens * seqs) + _cache(
        heldout, width, ac.dtype, data.tokens * 2 * data.test
    )
    if getattr(ac, "general_source", "cache") == "cache":
        caches += _cache(general, width, ac.dtype, data.tokens * chat_seqs)
    sae_bytes = 4 * (2 * width * latents + latents + 2 * width)
    buffer = (
        4 * width * getattr(ac, "stream_buffer", 0) if getattr(ac, "general_source", "") == "stream" else 0
    )
    sae_memory = 4 * sae_bytes + 4 * sc.batch_size * (latents + 2 * width) + buffer
    infer = _inference(shape, ac.batch_size, data.tokens)
    active = min(latents, 3 * sc.k * vectors / max(1, seqs))
    audit_rms = cfg.detect.folds + max(0, cfg.detect.ensemble - 1)  # fold RMs and the ensemble's other seeds
    return {
        "data": Need(int(data.text_bytes * (1 + data.test / max(1, data.train))), 0, SMALL * 256),
        "train-rm": Need(model, checkpoints, _rm_memory(cfg, shape, data.tokens)),
        "evaluate": Need(SMALL, 0, _inference(shape, rm.eval_batch_size, data.tokens)),
        "extract": Need(caches, 0, infer),
        "train-sae": Need(2 * sae_bytes, 0, sae_memory + (infer if buffer else 0)),
        "attribute": Need(int(16 * active * data.train), 0, _rm_memory(cfg, shape, data.tokens)),
        "curate": Need(3 * data.text_bytes, 0, SMALL * 256),  # train.jsonl, export.jsonl, train.parquet
        "audit": Need(audit_rms * model + caches, checkpoints, _rm_memory(cfg, shape, data.tokens)),
    }


def prefix_cache_bytes(cfg, shape: Shape, data: DataSizes) -> int:
    if cfg.rm.freeze_layers <= 0 or not cfg.rm.cache_frozen:
        return 0
    per = 2 if cfg.rm.bf16 == "true" else 4
    return int(per * shape.width * data.tokens * 2 * (data.train + data.test))


def _gb(n: float) -> str:
    return f"{n / 1e9:8.2f} GB" if n >= 1e7 else f"{n / 1e6:8.2f} MB"


def estimate_text(root, cfg, names: Sequence[str]) -> str:
    """The table under the plan: for each stage that would run, its instances, the disk it leaves, the run
    folder's peak while it runs, and its memory; the run folder's expected size at the end."""
    shape = model_shape(cfg.model.name)
    data = data_sizes(root, cfg)
    if shape is None or data is None:
        missing = "the model's config.json" if shape is None else "the data's size"
        hint = "" if shape is None else " (run `safer run CONFIG --stages data` first)"
        return f"expected disk and memory: not estimated, {missing} is not known here{hint}"
    needs = stage_needs(cfg, shape, data)
    counts: dict[str, int] = {}
    for name in names:
        group = name.split("/", 1)[0]
        counts[group] = counts.get(group, 0) + 1
    device = "GPU" if cfg.run.device == "cuda" else "RAM"
    lines = [
        f"expected per stage (estimates: {data.train} training pairs, {data.chat} chat, ~{data.tokens:.0f} tokens "
        f"a sequence, from {data.source}; model {shape.params / 1e6:.1f}M parameters, width {shape.width}, "
        f"from {shape.source}):",
        f"  {'stage':<14} {'runs':>4}  {'disk left':>11}  {'peak extra':>11}  {'memory (' + device + ')':>13}",
    ]
    total = peak = 0
    # the first reward model fills the frozen blocks' cache, unless an earlier run of this folder did
    filled = any((Path(root) / "cache").glob(f"frozen-{cfg.rm.freeze_layers}*/*"))
    prefix = 0 if filled else prefix_cache_bytes(cfg, shape, data)
    for group, n in counts.items():
        need = needs.get(group, Need(SMALL, 0, SMALL * 256))
        disk = n * need.disk + (prefix if group == "train-rm" else 0)
        peak = max(peak, total + disk + need.peak)
        total += disk
        memory = need.memory + (BASE_RSS if device == "RAM" else 0)
        lines.append(f"  {group:<14} {n:>4}  {_gb(disk)}  {_gb(need.peak)}  {_gb(memory)}")
    models = counts.get("train-rm", 0) * needs["train-rm"].disk + counts.get("audit", 0) * (
        needs["audit"].disk - needs["extract"].disk
    )
    lines.append(
        f"  run folder at the end: {_gb(total).strip()} ({_gb(models).strip()} of it reward models), "
        f"peak {_gb(peak).strip()}"
    )
    return "\n".join(lines)
