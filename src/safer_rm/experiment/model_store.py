"""The run's model store: the device, trained (or existing) reward models with their tokenizers, frozen-block
caches and scorers, their margins on pairs, the analysed layer and the run's SAE. torch and transformers are
imported only when a stage loads a model, so planning a run (`--dry-run`) imports neither."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import Config
from ..data.records import PreferencePair
from ..errors import StageError
from ..io import read_json
from ..precision import use_bf16
from ..reward.files import EXISTING_FILE, RENDER_FILE
from .graph import CLEAN
from .layout import RunLayout
from .rundir import fingerprint

if TYPE_CHECKING:
    import torch

    from ..models import Renderer
    from ..models.prefix_cache import PrefixCache
    from ..reward.scoring import Scorer


def pick_device(setting: str) -> torch.device:
    import torch

    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise StageError("run.device=cuda but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class RMHandle:
    """A trained (or existing) reward model on the run device: its scorer (with the run's evaluation batch size
    and precision, and the RM's own frozen-block cache), tokenizer and render settings."""

    scorer: Scorer
    tokenizer: object
    settings: dict

    @property
    def model(self) -> torch.nn.Module:
        return self.scorer.model

    @property
    def renderer(self) -> Renderer:
        return self.scorer.renderer


@dataclass
class ModelStore:
    cfg: Config
    paths: RunLayout
    prefix_caches: dict = field(default_factory=dict)
    """Open frozen-block caches by fingerprint and precision; a sub-run shares its parent's."""
    _device: torch.device | None = None

    @property
    def device(self) -> torch.device:
        """The run's device, resolved when a stage first needs it (with torch's thread count set)."""
        if self._device is None:
            import torch

            if self.cfg.run.threads is not None:
                torch.set_num_threads(self.cfg.run.threads)
            self._device = pick_device(self.cfg.run.device)
        return self._device

    @property
    def seed0(self) -> int:
        return self.cfg.run.seeds[0]

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
            folder = self.paths.cache() / (f"{name}-bf16" if bf16 else name)
            self.prefix_caches[fp, bf16] = PrefixCache(frozen, fp, folder, bf16=bf16)
        return self.prefix_caches[fp, bf16]

    def model_source(self, variant: str = CLEAN, seed: int | None = None) -> str:
        """Where a reward model's weights and tokenizer are read from: its run folder, or the existing reward
        model that run folder points to (`model.reward_model`)."""
        seed = self.seed0 if seed is None else seed
        path = self.paths.rm(variant, seed)
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
        if (self.paths.rm(variant, seed) / EXISTING_FILE).is_file():
            mc = self.cfg.model
            return load_tokenizer(source, mc.reward_model_revision, mc.trust_remote_code)
        return load_tokenizer(source)

    def reward_model(self, variant: str = CLEAN, seed: int | None = None) -> RMHandle:
        """A trained (or existing) reward model on the run device: its scorer, tokenizer and render settings."""
        from ..models import Renderer, load_reward_model
        from ..reward.scoring import Scorer

        seed = self.seed0 if seed is None else seed
        path = self.paths.rm(variant, seed)
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
        prefix = self.prefix_cache(
            settings.get("frozen_layers", 0), settings.get("owner"), settings.get("frozen_bf16")
        )
        renderer = Renderer.from_settings(tok, settings)
        rc = self.cfg.rm
        return RMHandle(
            Scorer(model, renderer, 2 * rc.eval_batch_size, use_bf16(rc.bf16), prefix), tok, settings
        )

    def scorer(self, variant: str = CLEAN, seed: int | None = None) -> Scorer:
        """A reward model's scorer with the run's evaluation settings (`rm.eval_batch_size` pairs, `rm.bf16`)."""
        return self.reward_model(variant, seed).scorer

    def margins(self, variant: str, seed: int, pairs: list[PreferencePair], desc: str) -> np.ndarray:
        """r(chosen) - r(rejected) of a trained (or existing) reward model on `pairs`."""
        from ..reward.scoring import reward_pairs

        return reward_pairs(self.scorer(variant, seed), pairs, desc).margin

    def layer(self, model=None) -> int:
        """The configured layer, or 3/4 of the depth (rounded) when unset."""
        if self.cfg.activations.layer is not None:
            return self.cfg.activations.layer
        if model is None:
            from transformers import AutoConfig

            n = (
                AutoConfig.from_pretrained(str(self.paths.rm(CLEAN, self.seed0)))
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

        layer = self.paths.run.info("extract").get("layer")
        if layer is None:
            raise StageError("no extraction recorded in the manifest; run `safer extract` first")
        d_in = ActivationCache(self.paths.activations("pairs")).d
        root = Path(root) if root else self.paths.sae()
        hookpoint = hookpoint_for(layer)
        if (root / "cfg.json").is_file():  # the hookpoint folder itself
            root, hookpoint = root.parent, root.name
        return load_sae(root, hookpoint, d_in=d_in, layer=layer, device=self.device).sae, layer
