"""Backbones (embedded or any Hugging Face model) and rendering of pairs into tokens."""

from .config import ModelConfig
from .registry import load_reward_model, load_tokenizer, resolve
from .render import Encoded, Renderer, truncation_counts

__all__ = [
    "Encoded",
    "ModelConfig",
    "Renderer",
    "load_reward_model",
    "load_tokenizer",
    "resolve",
    "truncation_counts",
]
