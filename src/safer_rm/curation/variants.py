"""A training-set variant of a run, as a value: the clean set, an edited set (mode, method, ratio) or a
detector's fold. Its `name` is what run folders, the manifest and every table use (`clean`,
`poison-safer-5.0`, `fold-2of5`); `Variant.parse` reads a name back. Names are built and read here only."""

from __future__ import annotations

import re
from dataclasses import dataclass

CLEAN = "clean"
EDIT_MODES = ("poison", "denoise")
_EDIT = re.compile(r"^(poison|denoise)-([a-z_]+)-(\d+(?:\.\d+)?)$")
_FOLD = re.compile(r"^fold-(\d+)of(\d+)$")


@dataclass(frozen=True)
class Variant:
    mode: str
    """`clean`, `poison`, `denoise` or `fold`."""
    method: str | None = None
    """Edits: `safer`, `random`, `reward_margin`."""
    ratio: float | None = None
    """Edits: percent of training pairs edited."""
    fold: int | None = None
    """Folds: which (0-based) of `folds`, trained on the other folds."""
    folds: int | None = None

    @classmethod
    def clean(cls) -> Variant:
        return cls(CLEAN)

    @classmethod
    def edit(cls, mode: str, method: str, ratio: float) -> Variant:
        if mode not in EDIT_MODES:
            raise ValueError(f"edit mode must be one of {EDIT_MODES}, got {mode!r}")
        return cls(mode, method, float(ratio))

    @classmethod
    def of_fold(cls, i: int, k: int) -> Variant:
        if not 0 <= i < k:
            raise ValueError(f"fold {i} of {k}")
        return cls("fold", fold=i, folds=k)

    @classmethod
    def parse(cls, name: str) -> Variant:
        """The variant a name stands for; ValueError for a name no variant has."""
        if name == CLEAN:
            return cls.clean()
        found = None
        if m := _EDIT.match(name):
            found = cls.edit(m[1], m[2], float(m[3]))
        elif (m := _FOLD.match(name)) and 0 < int(m[1]) <= int(m[2]):
            found = cls.of_fold(int(m[1]) - 1, int(m[2]))
        if (
            found is not None and found.name == name
        ):  # only the names runs write (`poison-safer-5.0`, not `-5`)
            return found
        raise ValueError(
            f"{name!r} is not a training-set variant (clean, <mode>-<method>-<ratio>, fold-<i>of<k>)"
        )

    @property
    def name(self) -> str:
        if self.mode == CLEAN:
            return CLEAN
        if self.mode == "fold":
            return f"fold-{self.fold + 1}of{self.folds}"
        return f"{self.mode}-{self.method}-{self.ratio:.1f}"

    @property
    def is_edit(self) -> bool:
        return self.mode in EDIT_MODES

    def same_edit_size(self, other: Variant) -> bool:
        """Both edits of the same mode and ratio (the variants a method is compared with)."""
        return self.is_edit and other.is_edit and (self.mode, self.ratio) == (other.mode, other.ratio)

    def __str__(self) -> str:
        return self.name
