"""Configuration of the judge that names safety-relevant latents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...errors import ConfigError

KINDS = ("none", "embedding", "openai", "hf", "labels")


@dataclass
class JudgeConfig:
    """Which judge scores latents 1-5 for safety relevance from their contexts, and how."""

    kind: Literal["none", "embedding", "openai", "hf", "labels"] = "embedding"
    """`embedding`: zero-shot with the embedded MiniLM sentence encoder (offline default); `openai`: any
    OpenAI-compatible Chat Completions endpoint; `hf`: a local chat model; `labels`: your file of scores;
    `none`: select by salience alone."""
    model: str = ""
    """Model name: the endpoint's model (openai), a HF id or path (hf); default per kind."""
    base_url: str = "https://api.openai.com/v1"
    """openai: base URL of the endpoint (Azure, vLLM, llama.cpp server, Ollama: their /v1 URL)."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai: NAME of the environment variable that holds the API key (the key is never stored)."""
    temperature: float = 0.1
    """Sampling temperature of openai/hf judges (the paper: 0.1)."""
    max_tokens: int = 200
    """Longest reply."""
    timeout: float = 60.0
    """Seconds per request."""
    concurrency: int = 4
    """Requests in flight at once."""
    max_retries: int = 4
    """Retries after a timeout, 429 or 5xx (exponential backoff; Retry-After honoured)."""
    backoff: float = 1.0
    """First backoff in seconds (doubles each retry)."""
    prompt_version: str = "v1"
    """Prompt file prompts/judge_<version>.txt; part of the cache key."""
    max_contexts: int = 10
    """Contexts shown to the judge per latent."""
    labels_path: str = ""
    """labels: JSON, YAML or CSV mapping latent -> score (and optional explanation)."""
    concepts_version: str = "v1"
    """embedding: concept descriptions file concepts/safety_<version>.yaml."""
    hf_explain: bool = True
    """hf: also generate a short explanation (greedy)."""
    device: str = "auto"
    """hf/embedding: device (auto, cpu, cuda)."""
    cache: bool = True
    """Cache every judgement on disk (a rerun never asks twice)."""

    def check(self) -> None:
        if self.kind == "labels" and not self.labels_path:
            raise ConfigError("labels_path", "the labels judge needs a file")
        if self.concurrency < 1 or self.max_retries < 0 or self.max_contexts < 1:
            raise ConfigError("concurrency", "concurrency and max_contexts must be >= 1, max_retries >= 0")
        if not 0 <= self.temperature <= 2:
            raise ConfigError("temperature", f"must be in [0, 2], got {self.temperature}")
        if self.timeout <= 0:
            raise ConfigError("timeout", f"must be > 0, got {self.timeout}")

    def default_model(self) -> str:
        return self.model or {"openai": "gpt-4o", "hf": "smollm2", "embedding": "all-MiniLM-L6-v2",
                              "labels": "human", "none": ""}[self.kind]
