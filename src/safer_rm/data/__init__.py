"""Preference data from any source: one record type, loaders with format detection, mixing, splitting."""

from ..lazy import lazy_exports
from .config import DataConfig, SourceConfig

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "FORMATS": "formats",
        "RowProblem": "formats",
        "detect_format": "formats",
        "load_source": "load",
        "PairSplit": "mix",
        "build_pairs": "mix",
        "prompt_disjoint_split": "mix",
        "DropReport": "quality",
        "PreferencePair": "records",
        "iter_pairs": "records",
        "read_pairs": "records",
        "write_pairs": "records",
    },
)

__all__ = [
    "FORMATS",
    "DataConfig",
    "DropReport",
    "PairSplit",
    "PreferencePair",
    "RowProblem",
    "SourceConfig",
    "build_pairs",
    "detect_format",
    "iter_pairs",
    "load_source",
    "prompt_disjoint_split",
    "read_pairs",
    "write_pairs",
]
