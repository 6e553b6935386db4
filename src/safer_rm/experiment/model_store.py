"""The model-loading half of a run context: trained (or existing) reward models, their tokenizers and
frozen-block caches, their margins on pairs, the analysed layer and the run's SAE. `RunContext` mixes it in;
torch and transformers are imported only when a stage loads a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.records import PreferencePair
from ..errors import StageError
from ..io import read_json
from ..precision import use_bf16
from ..reward.files import EXISTING_FILE, RENDER_FILE
from . import artifacts as A
from .graph import CLEAN
from .rundir import fingerprint

if TYPE_CHECKING:  # loaded where models are: planning a run (`--dry-run`) imports no torch
    import torch

    from ..models import Renderer
    from ..models.prefix_cache import PrefixCache


@dataclass
class RMHandle:
    """A trained reward model on the run device, ready to score."""

    model: torch.nn.Module
    tokenizer: object
    renderer: Renderer
    settings: dict
    prefix: PrefixCache | None


class ModelLoading:
    """Methods of `RunContext` that load models; they read its `cfg`, `run`, `device`, `seed0`, `cache_root`,
    `prefix_caches`, `rm_dir`, `activations_dir` and `sae_dir`."""

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
