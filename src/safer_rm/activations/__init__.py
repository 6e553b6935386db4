"""Hidden states of the reward model at one layer, at the positions a policy picks, standardised, cached."""

from .cache import ActivationCache, CacheBatches, CacheWriter
from .config import ActivationsConfig
from .extract import extract_pairs, standardize
from .positions import POLICIES, TokenTexts, select_positions

__all__ = [
    "POLICIES",
    "ActivationCache",
    "CacheBatches",
    "ActivationsConfig",
    "CacheWriter",
    "TokenTexts",
    "extract_pairs",
    "select_positions",
    "standardize",
]
