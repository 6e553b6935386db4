"""Hidden states of the reward model at one layer, at the positions a policy picks, standardised, cached."""

from ..lazy import lazy_exports
from .config import ActivationsConfig

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ActivationCache": "cache",
        "CacheBatches": "cache",
        "CacheWriter": "cache",
        "extract_pairs": "extract",
        "standardize": "extract",
        "POLICIES": "positions",
        "TokenTexts": "positions",
        "select_positions": "positions",
    },
)

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
