"""What a stage function gets: the run's config, its run directory and device, where its artifacts live,
and cached handles to what several stages load (the prefix cache, the evaluation pairs, trained models)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import distributed
from ..config import Config, config_dict
from ..curation.variants import Variant
from ..data import read_pairs
from ..data.load import load_source
from ..data.quality import DropReport
from ..data.records import PreferencePair
from ..errors import StageError
from ..features.selection import Selection
from ..io import read_json, sha256_file, sha256_text
from ..precision import use_bf16
from ..reward.files import EXISTING_FILE, RENDER_FILE
from . import artifacts as A
from .artifacts import PairScores, read_selection
from .graph import CLEAN
from .rundir import RunDir, fingerprint

if TYPE_CHECKING:  # loaded where models are: planning a run (`--dry-run`) imports no torch
    import torch

    from ..models import Renderer
    from ..models.prefix_cache import PrefixCache
    from ..reward.evaluate import EvalSet


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
class RMHandle:
    """A trained reward model on the run device, ready to score."""

    model: torch.nn.Module
    tokenizer: object
    renderer: Renderer
    settings: dict
    prefix: PrefixCache | None


@dataclass
class RunContext:
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
        return sets + self.extra_sets()

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

    # ---- models --------------------------------------------------------------------------------------
    def prefix_cache(
        self, frozen: int | None = None, owner: dict | None = None, bf16: bool | None = None
    ) -> PrefixCache | None:
        """The shared cache of frozen lower-block states (None when nothing is frozen or caching is off): the
        backbone's, or, with `owner` (an existing reward model's source and weight hashes), that model's own.
        `bf16`: the precision its frozen blocks run in (default `rm.bf16`; a trained RM's own, from its render
        settings), whatever stage fills it."""
        from ..models.prefix_cache import PrefixCache

        frozen = self.cfg.rm.freeze_layers if frozen is None else frozen
        if frozen <= 0 or not self.cfg.rm.cache_frozen:
            return None
        bf16 = use_bf16(self.cfg.rm.bf16) if bf16 is None else bool(bf16)
        key = (
            (self.cfg.model.name, self.cfg.model.revision, frozen)
            if owner is None
            else ("existing", owner, frozen)
        )
        fp = fingerprint(list(key))
        name = f"frozen-{frozen}" if owner is None else f"frozen-{frozen}-{fp[:10]}"
        if (fp, bf16) not in self.prefix_caches:
            folder = (self.cache_root or self.run.file(A.CACHE)) / (f"{name}-bf16" if bf16 else name)
            self.prefix_caches[fp, bf16] = PrefixCache(frozen, fp, folder, bf16=bf16)
        return self.prefix_caches[fp, bf16]

    def model_source(self, variant: str = CLEAN, seed: int | None = None) -> str:
        """Where a reward model's weights and tokenizer are read from: its run folder, or the existing reward
        model that run folder points to (`model.reward_model`)."""
        seed = self.seed0 if seed is None else seed
        path = self.rm_dir(variant, seed)
        if (path / EXISTING_FILE).is_file():
            return read_json(path / EXISTING_FILE)["source"]
        if not (path / "config.json").is_file():
            raise StageError(f"{path}: reward model '{variant}' (seed {seed}) has not been trained")
        return str(path)

    def tokenizer(self, variant: str = CLEAN, seed: int | None = None):
        """The tokenizer of a trained (or existing) reward model."""
        from ..models import load_tokenizer

        seed = self.seed0 if seed is None else seed
        source = self.model_source(variant, seed)
        if (self.rm_dir(variant, seed) / EXISTING_FILE).is_file():
            mc = self.cfg.model
            return load_tokenizer(source, mc.reward_model_revision, mc.trust_remote_code)
        return load_tokenizer(source)

    def reward_model(self, variant: str = CLEAN, seed: int | None = None) -> RMHandle:
        """A trained (or existing) reward model: model, tokenizer, renderer, render settings, its prefix cache."""
        from ..models import Renderer, load_reward_model

        seed = self.seed0 if seed is None else seed
        path = self.rm_dir(variant, seed)
        source = self.model_source(variant, seed)
        settings = read_json(path / RENDER_FILE)
        tok = self.tokenizer(variant, seed)
        if (path / EXISTING_FILE).is_file():
            mc = self.cfg.model
            model = load_reward_model(
                source,
                tok,
                mc.reward_model_revision,
                mc.trust_remote_code,
                mc.allow_pickle,
                dtype=mc.dtype,
                existing=True,
                device=self.device,
            )
        else:
            model = load_reward_model(source, tok, allow_pickle=False)
        model = model.to(self.device).eval()
        return RMHandle(
            model,
            tok,
            Renderer.from_settings(tok, settings),
            settings,
            self.prefix_cache(
                settings.get("frozen_layers", 0), settings.get("owner"), settings.get("frozen_bf16")
            ),
        )

    def margins(self, variant: str, seed: int, pairs: list[PreferencePair], desc: str) -> np.ndarray:
        """r(chosen) - r(rejected) of a trained (or existing) reward model on `pairs`."""
        from ..reward.scoring import reward_pairs

        rm = self.reward_model(variant, seed)
        return reward_pairs(
            rm.model,
            rm.renderer,
            pairs,
            self.cfg.rm.eval_batch_size,
            use_bf16(self.cfg.rm.bf16),
            desc,
            prefix=rm.prefix,
        ).margin

    def layer(self, model=None) -> int:
        """The configured layer, or 3/4 of the depth (rounded) when unset."""
        if self.cfg.activations.layer is not None:
            return self.cfg.activations.layer
        if model is None:
            from transformers import AutoConfig

            n = (
                AutoConfig.from_pretrained(str(self.rm_dir(CLEAN, self.seed0)))
                .get_text_config()
                .num_hidden_layers
            )
        else:
            from ..models.layers import num_layers

            n = num_layers(model)
        return max(1, round(0.75 * n))

    def load_sae(self, root: str | Path | None = None):
        """(SAE, layer): the run's SAE, or the one at `root`, checked against the cached layer's width and index."""
        from ..activations import ActivationCache
        from ..sae import hookpoint_for, load_sae

        layer = self.run.info("extract").get("layer")
        if layer is None:
            raise StageError("no extraction recorded in the manifest; run `safer extract` first")
        d_in = ActivationCache(self.activations_dir("pairs")).d
        root = Path(root) if root else self.sae_dir()
        hookpoint = hookpoint_for(layer)
        if (root / "cfg.json").is_file():  # the hookpoint folder itself
            root, hookpoint = root.parent, root.name
        return load_sae(root, hookpoint, d_in=d_in, layer=layer, device=self.device).sae, layer

    def selection(self) -> Selection:
        return read_selection(self.run.file(A.SELECTION))

    def pair_scores(self, pair_ids: list[str] | None = None) -> PairScores:
        """The scores of the training pairs (`score`); with `pair_ids`, checked to be those pairs in order."""
        return PairScores.read(self.run.file(A.SCORES), pair_ids)
