"""Configuration of activation extraction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError


@dataclass
class ActivationsConfig:
    """Hidden states of the reward model at one layer, at the positions a policy picks."""

    layer: int | None = None
    """Layer to read: the residual stream after block L (1-based; 0 = embeddings). None: 3/4 of the depth."""
    positions: Literal["sentence_end", "all", "response", "last"] = "sentence_end"
    """Positions of the safety pairs that yield vectors (SAE stage 2, salience, contexts, pair scores)."""
    min_gap: int = 5
    """sentence_end: skip a sentence end closer than this many tokens to the previous kept one."""
    general_positions: Literal["sentence_end", "all", "response", "last"] = "all"
    """Positions of the general text used for SAE stage 1."""
    general_kind: Literal["chat", "all"] = "chat"
    """General text for SAE stage 1: the chat sources' pairs (default) or every training pair."""
    general_source: Literal["cache", "stream"] = "cache"
    """Where SAE stage 1 reads its vectors: `cache` extracts them to activations/general once (fast for small
    runs; disk grows with tokens x width); `stream` computes them from the reward model while the SAE trains,
    shuffled through a buffer of `stream_buffer` vectors, nothing on disk (the paper profile: tens of GB)."""
    stream_buffer: int = 262144
    """`general_source: stream`: vectors held in the shuffle buffer (its memory: this x width x dtype bytes)."""
    standardize: bool = True
    """Standardise each vector over its hidden dimensions: (x - mean) / (std + 1e-6), as the reference does."""
    batch_size: int = 32
    """Sequences per forward pass."""
    bf16: Literal["auto", "true", "false"] = "auto"
    """bf16 autocast for the forward pass (`auto`: where the hardware has it)."""
    shard_vectors: int = 65536
    """Vectors per safetensors shard (the unit of streaming)."""
    dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    """Storage type of the cached vectors."""

    def check(self) -> None:
        if self.layer is not None and self.layer < 0:
            raise ConfigError("layer", f"must be >= 0, got {self.layer}")
        if self.min_gap < 1:
            raise ConfigError("min_gap", f"must be >= 1, got {self.min_gap}")
        if self.stream_buffer < 2:
            raise ConfigError("stream_buffer", f"must be >= 2, got {self.stream_buffer}")
        if self.batch_size < 1 or self.shard_vectors < 1:
            raise ConfigError("batch_size", "batch_size and shard_vectors must be >= 1")
