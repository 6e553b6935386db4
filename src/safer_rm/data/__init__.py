"""Preference data from any source: one record type, loaders with format detection, mixing, splitting."""

from .config import DataConfig, SourceConfig
from .formats import FORMATS, RowProblem, detect_format
from .load import load_source
from .mix import PairSplit, build_pairs, prompt_disjoint_split
from .quality import DropReport
from .records import PreferencePair, iter_pairs, read_pairs, write_pairs

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
