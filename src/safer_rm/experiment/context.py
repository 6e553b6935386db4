"""What a stage function gets: the run's config, its run directory and device, where its artifacts live,
and cached handles to what several stages load (the prefix cache, the evaluation pairs, trained models)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import distributed
from ..config import Config, config_dict
from ..curation.variants import Variant
from ..data import read_pairs
from ..data.load import load_source
from ..data.quality import DropReport
from ..data.records import PreferencePair
from ..errors import StageError
from ..features.selection import Selection
from ..io import sha256_file, sha256_text
from . import artifacts as A
from .artifacts import PairScores, read_selection
from .context_models import ModelLoading, RMHandle  # noqa: F401  (RMHandle: re-exported)
from .graph import CLEAN
from .rundir import RunDir

if TYPE_CHECKING:  # loaded where models are: planning a run (`--dry-run`) imports no torch
    import torch

    from ..reward.evaluate import EvalSet

log = logging.getLogger(__name__)


def pick_device(setting: str) -> torch.device:
    import torch

    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise StageError("run.device=cuda but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class GivenData:
    """Training and test pairs handed to a sub-run instead of being built from the data sources."""

    train: list[PreferencePair]
    test: list[PreferencePair]
    fingerprint: dict
    """What makes them what they are (e.g. the planted pair ids): part of the data stage's fingerprint."""
    info: dict
    rm_from: dict[int, Path] = field(default_factory=dict)
    """Reward models already trained on exactly `train` with this run's settings, by seed: the sub-run copies
    them instead of training its own."""


@dataclass
class RunContext(ModelLoading):
    cfg: Config
    run: RunDir
    resume: bool = True
    given: GivenData | None = None
    cache_root: Path | None = None
    """Folder of the frozen-block cache (a sub-run shares its parent's); default <run>/cache."""
    judgements: Path | None = None
    """Folder of the judge's verdict cache (a sub-run shares its parent's: verdicts are keyed by the contexts
    they judged, so the same latent with the same contexts is judged once); default <run>/features/judgements."""
    subrun: Callable[[RunContext, list[str]], None] | None = None
    """Runs stages of another context (set by the runner; the audit's sub-run uses it)."""
    started: float = field(default_factory=time.time)
    prefix_caches: dict = field(default_factory=dict)
    """Open frozen-block caches by fingerprint (model or existing RM, frozen blocks); a sub-run shares its
    parent's."""
    _rewardbench: list | None = None
    _extra: dict = field(default_factory=dict)
    _hashes: dict = field(default_factory=dict)
    _device: torch.device | None = None

    @classmethod
    def create(cls, cfg: Config, resume: bool = True, **kw) -> RunContext:
        distributed.init()
        ctx = cls(cfg, RunDir(cfg.run.path, config_dict(cfg)), resume, **kw)
        if cfg.run.device == "cuda":
            ctx.device  # noqa: B018  (asked for explicitly: fail now, not in the first stage that needs it)
        return ctx

    @property
    def device(self) -> torch.device:
        """The run's device, resolved when a stage first needs it (with torch's thread count set), so that
        planning a run imports no torch."""
        if self._device is None:
            import torch

            if self.cfg.run.threads is not None:
                torch.set_num_threads(self.cfg.run.threads)
            self._device = pick_device(self.cfg.run.device)
        return self._device

    @property
    def main(self) -> bool:
        return distributed.is_main()

    @property
    def seed0(self) -> int:
        return self.cfg.run.seeds[0]

    # ---- where artifacts live (artifacts.py names every file) ---------------------------------------
    def train_path(self, variant: str = CLEAN) -> Path:
        if variant == CLEAN:
            return self.run.file(A.TRAIN)
        if Variant.parse(variant).mode == "fold":
            return self.run.file(A.FOLD_TRAIN, variant=variant)
        return self.run.file(A.CURATED_TRAIN, variant=variant)

    def heldout_fold_path(self, variant: str) -> Path:
        """The pairs a fold's reward model never saw (it scores them)."""
        return self.run.file(A.FOLD_HELDOUT, variant=variant)

    def rm_dir(self, variant: str, seed: int) -> Path:
        return self.run.file(A.RM_DIR, variant=variant, seed=seed)

    def eval_path(self, variant: str, seed: int) -> Path:
        return self.run.file(A.EVAL, variant=variant, seed=seed)

    def activations_dir(self, which: str) -> Path:
        return self.run.file(A.ACTIVATIONS, which=which)

    def sae_dir(self) -> Path:
        return self.run.file(A.SAE_DIR)

    def features_dir(self) -> Path:
        return self.run.file(A.FEATURES_DIR)

    def judgements_dir(self) -> Path:
        return self.judgements or self.run.file(A.JUDGEMENTS)

    def scores_path(self) -> Path:
        return self.run.file(A.SCORES)

    # ---- pairs ---------------------------------------------------------------------------------------
    def train_pairs(self, variant: str = CLEAN) -> list[PreferencePair]:
        path = self.train_path(variant)
        if not path.is_file():
            raise StageError(f"{path}: training pairs of variant '{variant}' are missing")
        return read_pairs(path)

    def test_pairs(self) -> list[PreferencePair]:
        return read_pairs(self.run.file(A.TEST))

    def source_origins(self) -> dict[str, str]:
        """Where each data source was read from (hub id, else the path as configured), for dataset cards."""
        return {src.name: src.hub or src.path for src in self.cfg.data.sources}

    def rewardbench(self) -> list[PreferencePair]:
        from ..reward.evaluate import load_rewardbench

        if self._rewardbench is None:
            self._rewardbench = load_rewardbench(self.cfg.eval, self.cfg.data.root, seed=self.cfg.data.seed)
        return self._rewardbench

    def pool_path(self) -> Path:
        return self.run.file(A.POOL)

    def pool_pairs(self) -> list[PreferencePair]:
        path = self.pool_path()
        if not path.is_file():
            raise StageError(f"{path}: the evaluation pool is missing; run `safer run --stages pool`")
        return read_pairs(path)

    def extra_sets(self) -> list[EvalSet]:
        """The configured `eval.extra` sets, loaded once per context."""
        from ..reward.evaluate import EvalSet, set_style

        out = []
        for src in self.cfg.eval.extra_sets():
            if src.name not in self._extra:
                pairs = load_source(
                    src, self.cfg.data.root, DropReport(), max_text_chars=self.cfg.data.max_text_chars
                )
                self._extra[src.name] = EvalSet(src.name, pairs, set_style(pairs))
            out.append(self._extra[src.name])
        return out

    def eval_sets(self) -> list[EvalSet]:
        """Everything an RM is evaluated on: RewardBench, the held-out split, the pool, the extra sets."""
        from ..reward.evaluate import EvalSet

        ec = self.cfg.eval
        sets = [EvalSet("rewardbench", self.rewardbench(), "rewardbench")]
        if ec.heldout:
            sets.append(EvalSet("heldout", self.test_pairs()))
        if ec.pool:
            sets.append(EvalSet("pool", self.pool_pairs()))
        if ec.rewardbench2:
            sets.append(self.rewardbench2_set())
        return sets + self.extra_sets()

    def rewardbench2_set(self) -> EvalSet:
        """`eval.rewardbench2`'s best-of-N rows as pairs (`data.best_of_n.as_pairs`), loaded once per context."""
        from ..data.best_of_n import as_pairs, load_best_of_n
        from ..reward.evaluate import EvalSet
        from ..reward.rewardbench2 import NAME

        if NAME not in self._extra:
            ec, report = self.cfg.eval, DropReport()
            rows = load_best_of_n(
                ec.rewardbench2 or "",
                self.cfg.data.root,
                report,
                ec.rewardbench2_split,
                NAME,
                max_text_chars=self.cfg.data.max_text_chars,
            )
            for line in report.lines():
                log.info("eval.rewardbench2: %s", line)
            self._extra[NAME] = EvalSet(NAME, as_pairs(rows, NAME), NAME)
        return self._extra[NAME]

    def file_hash(self, path: Path) -> str | None:
        """sha256 of a file, memoised per (path, inode, mtime, size); of a dataset folder (hub layout), the sha256
        of its files' relative paths and hashes (hidden files and folders aside); None when it does not exist."""
        if path.is_dir():
            files = sorted(
                f
                for f in path.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
            return sha256_text(
                "".join(f"{f.relative_to(path).as_posix()}\0{self.file_hash(f)}\n" for f in files)
            )
        if not path.is_file():
            return None
        st = path.stat()
        stamp = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp not in self._hashes:
            self._hashes[stamp] = sha256_file(path)
        return self._hashes[stamp]

    def selection(self) -> Selection:
        return read_selection(self.run.file(A.SELECTION))

    def pair_scores(self, pair_ids: list[str] | None = None) -> PairScores:
        """The scores of the training pairs (`score`); with `pair_ids`, checked to be those pairs in order."""
        return PairScores.read(self.run.file(A.SCORES), pair_ids)
