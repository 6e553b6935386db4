"""A run's data: its training and test pairs, the evaluation pool and sets (loaded once per context), and the
hashes of input files that fingerprints are made of."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config
from ..data import read_pairs
from ..data.load import load_source
from ..data.quality import DropReport
from ..data.records import PreferencePair
from ..errors import StageError
from ..io import sha256_file, sha256_text
from .graph import CLEAN
from .layout import RunLayout

if TYPE_CHECKING:
    from ..reward.evaluate import EvalSet

log = logging.getLogger(__name__)


@dataclass
class RunData:
    cfg: Config
    paths: RunLayout
    _rewardbench: list | None = None
    _extra: dict = field(default_factory=dict)
    _hashes: dict = field(default_factory=dict)

    def train_pairs(self, variant: str = CLEAN) -> list[PreferencePair]:
        path = self.paths.train(variant)
        if not path.is_file():
            raise StageError(f"{path}: training pairs of variant '{variant}' are missing")
        return read_pairs(path)

    def test_pairs(self) -> list[PreferencePair]:
        return read_pairs(self.paths.test())

    def pool_pairs(self) -> list[PreferencePair]:
        path = self.paths.pool()
        if not path.is_file():
            raise StageError(f"{path}: the evaluation pool is missing; run `safer run --stages pool`")
        return read_pairs(path)

    def source_origins(self) -> dict[str, str]:
        """Where each data source was read from (hub id, else the path as configured), for dataset cards."""
        return {src.name: src.hub or src.path for src in self.cfg.data.sources}

    def rewardbench(self) -> list[PreferencePair]:
        from ..reward.evaluate import load_rewardbench

        if self._rewardbench is None:
            self._rewardbench = load_rewardbench(self.cfg.eval, self.cfg.data.root, seed=self.cfg.data.seed)
        return self._rewardbench

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
