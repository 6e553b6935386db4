"""Where a run's artifacts live: the paths stages read and write (every file name is declared in
`artifacts.py`), and typed readers of what stages hand each other (the selection, the pair scores)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..curation.variants import Variant
from ..features.selection import Selection
from ..io import read_json
from . import artifacts as A
from .artifacts import PairScores, read_selection
from .graph import CLEAN
from .rundir import RunDir


@dataclass
class RunLayout:
    run: RunDir
    cache_root: Path | None = None
    """Folder of the frozen-block cache (a sub-run shares its parent's); default <run>/cache."""
    judgements_root: Path | None = None
    """Folder of the judge's verdict cache (a sub-run shares its parent's: verdicts are keyed by the contexts
    they judged, so the same latent with the same contexts is judged once); default <run>/features/judgements."""

    def train(self, variant: str = CLEAN) -> Path:
        """The training pairs of a variant: the clean split, a fold's training part or a curated set."""
        if variant == CLEAN:
            return self.run.file(A.TRAIN)
        if Variant.parse(variant).mode == "fold":
            return self.run.file(A.FOLD_TRAIN, variant=variant)
        return self.run.file(A.CURATED_TRAIN, variant=variant)

    def test(self) -> Path:
        return self.run.file(A.TEST)

    def heldout_fold(self, variant: str) -> Path:
        """The pairs a fold's reward model never saw (it scores them)."""
        return self.run.file(A.FOLD_HELDOUT, variant=variant)

    def pool(self) -> Path:
        return self.run.file(A.POOL)

    def rm(self, variant: str, seed: int) -> Path:
        return self.run.file(A.RM_DIR, variant=variant, seed=seed)

    def eval(self, variant: str, seed: int) -> Path:
        return self.run.file(A.EVAL, variant=variant, seed=seed)

    def activations(self, which: str) -> Path:
        return self.run.file(A.ACTIVATIONS, which=which)

    def sae(self) -> Path:
        return self.run.file(A.SAE_DIR)

    def features(self) -> Path:
        return self.run.file(A.FEATURES_DIR)

    def judgements(self) -> Path:
        return self.judgements_root or self.run.file(A.JUDGEMENTS)

    def cache(self) -> Path:
        return self.cache_root or self.run.file(A.CACHE)

    def scores(self) -> Path:
        return self.run.file(A.SCORES)

    def features_doc(self) -> dict | None:
        """The features stage's document (features.json), for the summary and the report; None before it ran."""
        path = self.run.file(A.FEATURES)
        return read_json(path) if path.is_file() else None

    def selection(self) -> Selection:
        return read_selection(self.run.file(A.SELECTION))

    def pair_scores(self, pair_ids: list[str] | None = None) -> PairScores:
        """The scores of the training pairs (`score`); with `pair_ids`, checked to be those pairs in order."""
        return PairScores.read(self.run.file(A.SCORES), pair_ids)
