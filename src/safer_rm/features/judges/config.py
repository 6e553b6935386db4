"""Configuration of the judge that scores latents 1-5 for safety relevance from their contexts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ...errors import ConfigError
from ...typed_config import require

KINDS = ("embedding", "openai", "hf", "labels", "none")
DEFAULT_MODELS = {
    "embedding": "all-MiniLM-L6-v2",
    "openai": "gpt-4o",
    "hf": "smollm2",
    "labels": "human",
    "none": "",
}
# Margins (best safety-concept similarity minus best ordinary-topic similarity) that map to the scores
# 1, 2, 3, 4, 5; linear in between, clipped outside. Read off the calibration set, never the probe set
# (`python bench/judge_probe.py --calibrate`; embedding.py's docstring has the rule).
EMBEDDING_ANCHORS = [-0.075, -0.025, 0.025, 0.075, 0.125]


@dataclass
class JudgeConfig:
    """Which judge scores latents 1-5 for safety relevance from their contexts (docs/method.md §4), and how."""

    kind: Literal["embedding", "openai", "hf", "labels", "none"] = "embedding"
    """`embedding`: zero-shot with the embedded MiniLM sentence encoder (offline default); `openai`: any
    OpenAI-compatible Chat Completions endpoint (the paper: GPT-4o); `hf`: a local chat model's digit
    probabilities; `labels`: your file of scores; `none`: select by salience alone."""
    model: str = ""
    """Model: the endpoint's model name (openai), a HF id, local folder or `smollm2` (hf). Empty: gpt-4o for
    openai, smollm2 for hf (measured useless as a judge: use a real chat model), MiniLM for embedding."""
    prompt_version: str = "v1"
    """Prompt file prompts/judge_<version>.txt, or a path to your own prompt file; part of the cache key."""
    max_contexts: int = 16
    """Contexts shown to (or embedded by) the judge per latent, highest activation first."""
    context_chars: int = 160
    """Characters of text kept on each side of the activated token when a context is shown."""

    base_url: str = "https://api.openai.com/v1"
    """openai: base URL of the endpoint up to /v1 (vLLM, llama.cpp server, Ollama: http://host:port/v1; a query
    string such as ?api-version=... is kept)."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai: NAME of the environment variable holding the API key (the key itself is never stored or logged).
    Empty: send no key (local servers)."""
    api_key_header: Literal["authorization", "api-key"] = "authorization"
    """openai: `authorization` sends `Authorization: Bearer <key>`; `api-key` sends `api-key: <key>` (Azure)."""
    temperature: float = 0.1
    """openai: sampling temperature (the paper: 0.1)."""
    max_tokens: int = 200
    """openai: longest reply in tokens."""
    max_tokens_field: str = "max_tokens"
    """openai: request field for the reply length (`max_completion_tokens` for OpenAI reasoning models)."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """openai: extra request fields merged into every request body (e.g. {seed: 0})."""
    timeout: float = 60.0
    """openai: seconds per request before it counts as a timeout."""
    concurrency: int = 4
    """openai: requests in flight at once."""
    max_retries: int = 4
    """openai: retries after a timeout, connection error, 408, 429 or 5xx (other 4xx are not retried)."""
    backoff: float = 1.0
    """openai: first wait in seconds before a retry; doubles each retry (with jitter)."""
    max_wait: float = 60.0
    """openai: longest single wait between retries, Retry-After included."""

    hf_device: Literal["auto", "cpu", "cuda"] = "auto"
    """hf: device (auto: cuda when available)."""
    hf_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """hf: weight dtype (auto: bfloat16 on cuda, float32 on cpu)."""
    hf_max_length: int = 2048
    """hf: longest prompt in tokens; contexts are dropped from the end until the prompt fits."""
    hf_explanation_tokens: int = 48
    """hf: tokens of greedy explanation generated after the score (0: no explanation)."""
    trust_remote_code: bool = False
    """hf: allow model code from the hub to run."""

    concepts_version: str = "v1"
    """embedding: concept descriptions concepts/safety_<version>.yaml, or a path to your own YAML file."""
    embedding_anchors: list[float] = field(default_factory=lambda: list(EMBEDDING_ANCHORS))
    """embedding: five increasing margins mapped to the scores 1..5 (linear in between, clipped outside)."""
    embedding_batch_size: int = 64
    """embedding: texts per encoder batch."""
    embedding_device: Literal["auto", "cpu", "cuda"] = "cpu"
    """embedding: device of the sentence encoder."""

    labels_path: str = ""
    """labels: JSON, YAML or CSV file mapping latent -> score 1-5 (and an optional explanation)."""

    cache: bool = True
    """Cache every judgement on disk next to the run: a rerun or resumed run never asks (or pays) twice."""

    def check(self) -> None:
        if self.kind == "labels" and not self.labels_path:
            raise ConfigError("labels_path", "the labels judge needs a file (judge.labels_path)")
        if not self.prompt_version:
            raise ConfigError("prompt_version", "must not be empty")
        require(
            self,
            (
                "max_contexts",
                "context_chars",
                "max_tokens",
                "concurrency",
                "hf_max_length",
                "embedding_batch_size",
            ),
            at_least=1,
        )
        require(self, ("max_retries", "hf_explanation_tokens", "backoff"), at_least=0)
        require(self, ("timeout", "max_wait"), above=0)
        if not 0 <= self.temperature <= 2:
            raise ConfigError("temperature", f"must be in [0, 2], got {self.temperature}")
        if self.kind == "openai" and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError("base_url", f"must start with http:// or https://, got {self.base_url!r}")
        anchors = self.embedding_anchors
        if len(anchors) != 5 or any(b <= a for a, b in zip(anchors, anchors[1:])):
            raise ConfigError("embedding_anchors", f"must be 5 strictly increasing margins, got {anchors}")

    def default_model(self) -> str:
        """The model actually used: `model`, or the kind's default."""
        return self.model or DEFAULT_MODELS[self.kind]
