"""Configuration of the reward-model backbone and how pairs are rendered into tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError


@dataclass
class ModelConfig:
    """Backbone and rendering."""

    name: str = "minilm"
    """Backbone: `minilm` or `smollm2` (embedded, no hub), a Hugging Face model id, or a local folder."""
    max_length: int = 128
    """Tokens per rendered prompt + response; the prompt is cut from the left, the response end is always kept."""
    min_prompt_tokens: int = 0
    """Keep at least the last N prompt tokens when the response alone would fill `max_length` (the response
    is then cut from its left; its end is always kept). 0: the prompt goes first, as in the reference."""
    template: Literal["auto", "chat", "plain"] = "auto"
    """`chat`: the tokenizer's chat template; `plain`: "User: ...\\nAssistant: ..." text; `auto`: chat if the tokenizer has one."""
    system_prompt: str | None = None
    """System message for chat templates (None: the template's own default)."""
    reward_model: str | None = None
    """An existing reward model (hub id or local folder; any `AutoModelForSequenceClassification` with one
    output) used as the clean RM: loaded as is and never trained; activations, SAE, features, scores, the causal
    test and the detectors read it. Its tokenizer's chat template is used (`template: auto`); `max_length`,
    `template` and `system_prompt` still apply. `name` stays the backbone that edited sets and the detectors'
    reward models are trained from."""
    reward_model_revision: str | None = None
    """Hub revision (branch, tag or commit) of `reward_model`; `revision` is the backbone's."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Weights' dtype of an existing reward model: auto keeps the saved dtype on CUDA and uses float32 on the
    CPU; float32 or bfloat16 force it."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) for a hub id."""
    trust_remote_code: bool = False
    """Allow model code from the hub to run (off unless you trust the repository)."""
    allow_pickle: bool = False
    """Allow pickle weight files (.bin/.pt); by default only safetensors are read."""

    def check(self) -> None:
        if self.max_length < 8:
            raise ConfigError("max_length", f"must be >= 8, got {self.max_length}")
        if not 0 <= self.min_prompt_tokens < self.max_length // 2:
            raise ConfigError(
                "min_prompt_tokens", f"must be in [0, max_length/2), got {self.min_prompt_tokens}"
            )
        if not self.name:
            raise ConfigError("name", "a model name or path is required")
