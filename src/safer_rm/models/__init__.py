"""Backbones (embedded or any Hugging Face model) and rendering of pairs into tokens."""

from ..lazy import lazy_exports
from .config import ModelConfig

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "load_reward_model": "registry",
        "load_tokenizer": "registry",
        "resolve": "registry",
        "Encoded": "render",
        "Renderer": "render",
        "truncation_counts": "render",
    },
)

__all__ = [
    "Encoded",
    "ModelConfig",
    "Renderer",
    "load_reward_model",
    "load_tokenizer",
    "resolve",
    "truncation_counts",
]
