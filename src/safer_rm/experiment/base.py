"""Data, reward models and their evaluation: the base of the pipeline. Each stage reads artifacts of the run directory and writes new ones; `run_all` chains them.
Finished stages whose inputs and settings are unchanged are skipped on `--resume`."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from .. import distributed
from ..config import Config, config_dict
from ..data import build_pairs, read_pairs, write_pairs
from ..data.load import expand, iter_source_rows
from ..errors import DataError, ModelError, StageError
from ..io import read_json, sha256_file, write_json
from ..models import Renderer, load_reward_model, load_tokenizer
from ..models.prefix_cache import PrefixCache
from ..reward.evaluate import evaluate, load_rewardbench, write_margins
from ..reward.train import RENDER_FILE, train_reward_model, use_bf16
from .rundir import RunDir, fingerprint

log = logging.getLogger(__name__)
CLEAN = "clean"


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise StageError("run.device=cuda but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


class PipelineBase:
    """Stages of one run. `resume=True` reuses finished stages; a stage asked for by name always reruns."""

    def __init__(self, cfg: Config, resume: bool = True):
        self.cfg = cfg
        self.resume = resume
        distributed.init()
        self.main = distributed.is_main()
        self.run = RunDir(cfg.run.path, config_dict(cfg))
        self.device = pick_device(cfg.run.device)
        self.started = time.time()
        self._hashes: dict[tuple, str] = {}  # (path, mtime, size) -> sha256: each deps chain asks again

    def preflight(self) -> None:
        """Cheap checks of every path the run will need, before any stage writes anything."""
        from ..models.registry import EMBEDDED, check_local

        mc = self.cfg.model
        if mc.name.lower() not in EMBEDDED:
            check_local(mc.name, mc.allow_pickle)
        for src in self.cfg.data.sources:
            path = expand(src.path, self.cfg.data.root)
            if path and not Path(path).exists() and not src.hub and ("/" not in path or path.startswith((".", "/"))
                                                                   or Path(path).suffix):
                raise DataError(path, f"source '{src.name}': file not found")
        if self.cfg.sae.path and not Path(self.cfg.sae.path).exists():
            raise ModelError(f"{self.cfg.sae.path}: no SAE folder here (sae.path)")
        if self.cfg.judge.kind == "labels" and not Path(self.cfg.judge.labels_path).is_file():
            raise DataError(self.cfg.judge.labels_path, "labels file not found (judge.labels_path)")

    # ---- fingerprints of what each stage depends on -------------------------------------------------
    def _data_deps(self) -> dict:
        return {"data": config_dict(self.cfg)["data"], "root": expand("${root}", self.cfg.data.root)}

    def _rm_deps(self, variant: str, seed: int) -> dict:
        d = config_dict(self.cfg)
        return {**self._data_deps(), "model": d["model"], "rm": {**d["rm"], "seed": seed}, "variant": variant,
                "train": self.variant_train_hash(variant)}

    def _eval_deps(self, variant: str, seed: int) -> dict:
        return {**self._rm_deps(variant, seed), "eval": config_dict(self.cfg)["eval"]}

    def variant_train_hash(self, variant: str) -> str | None:
        path = self.train_path(variant)
        if not path.is_file():
            return None
        st = path.stat()
        stamp = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp not in self._hashes:
            self._hashes[stamp] = sha256_file(path)
        return self._hashes[stamp]

    def _reusable(self, name: str, deps, *outputs: Path, force: bool = False) -> bool:
        """A stage is skipped when it finished in this process, or (with resume) in an earlier one with the
        same settings, and its outputs exist."""
        if force:
            return False
        finished = name in self.run.completed_now or (self.resume and self.run.done(name, deps))
        return distributed.broadcast(finished and all(p.exists() for p in outputs))  # one decision for all ranks

    # ---- paths ---------------------------------------------------------------------------------------
    def train_path(self, variant: str = CLEAN) -> Path:
        if variant == CLEAN:
            return self.run.path("data", "train.jsonl")
        return self.run.path("curated", variant, "train.jsonl")

    def rm_dir(self, variant: str, seed: int) -> Path:
        return self.run.path("rm", variant, f"seed-{seed}")

    def eval_path(self, variant: str, seed: int) -> Path:
        return self.run.path("eval", variant, f"seed-{seed}.json")

    # ---- stages --------------------------------------------------------------------------------------
    def data(self, force: bool = False) -> None:
        deps = self._data_deps()
        if self._reusable("data", deps, self.train_path(), force=force):
            return
        with self.run.stage("data", deps) as st:
            if not self.main:
                return
            split = build_pairs(self.cfg.data)
            for line in split.report.lines():
                log.info("data: %s", line)
            if not split.train:
                raise StageError("no usable training pairs (see the data report above)")
            write_pairs(self.run.path("data", "train.jsonl"), split.train)
            write_pairs(self.run.path("data", "test.jsonl"), split.test)
            write_json(self.run.path("data", "report.json"), split.report.to_json())
            for src in self.cfg.data.sources:
                where, _ = iter_source_rows(src, self.cfg.data.root)
                if Path(where).is_file():
                    self.run.record_input(f"data/{src.name}", sha256_file(where))
            st.info = {"train": len(split.train), "test": len(split.test), "dropped": split.report.total_dropped(),
                       "drops": split.report.to_json()["dropped"], "notes": split.report.notes}

    def prefix_cache(self, frozen: int | None = None) -> PrefixCache | None:
        """The shared cache of frozen lower-block states (None when nothing is frozen or caching is off)."""
        frozen = self.cfg.rm.freeze_layers if frozen is None else frozen
        if frozen <= 0 or not self.cfg.rm.cache_frozen:
            return None
        key = (self.cfg.model.name, self.cfg.model.revision, frozen)
        if getattr(self, "_prefix", None) is None or self._prefix_key != key:
            self._prefix = PrefixCache(frozen, fingerprint(list(key)), self.run.path("cache", f"frozen-{frozen}"))
            self._prefix_key = key
        return self._prefix

    def train_pairs(self, variant: str = CLEAN):
        path = self.train_path(variant)
        if not path.is_file():
            raise StageError(f"{path}: training pairs of variant '{variant}' are missing")
        return read_pairs(path)

    def test_pairs(self):
        return read_pairs(self.run.path("data", "test.jsonl"))

    def load_rm(self, variant: str = CLEAN, seed: int | None = None):
        """(model on the run device, tokenizer, renderer, render settings) of a trained reward model."""
        seed = self.cfg.run.seeds[0] if seed is None else seed
        path = self.rm_dir(variant, seed)
        if not (path / "config.json").is_file():
            raise StageError(f"{path}: reward model '{variant}' (seed {seed}) has not been trained")
        tok = load_tokenizer(str(path))
        settings = read_json(path / RENDER_FILE)
        model = load_reward_model(str(path), tok, allow_pickle=False).to(self.device)
        return model.eval(), tok, Renderer.from_settings(tok, settings), settings

    def train_rm(self, variant: str = CLEAN, seed: int | None = None, force: bool = False) -> None:
        seed = self.cfg.run.seeds[0] if seed is None else seed
        self.data()
        name = f"train-rm/{variant}/seed-{seed}"
        deps = self._rm_deps(variant, seed)
        out = self.rm_dir(variant, seed)
        if self._reusable(name, deps, out / "config.json", force=force):
            return
        mc, rc = self.cfg.model, self.cfg.rm
        with self.run.stage(name, deps) as st:
            from transformers import set_seed

            set_seed(seed)
            tok = load_tokenizer(mc.name, mc.revision, mc.trust_remote_code)
            model = load_reward_model(mc.name, tok, mc.revision, mc.trust_remote_code, mc.allow_pickle)
            renderer = Renderer(tok, mc.max_length, mc.template, mc.system_prompt, mc.min_prompt_tokens)
            rcfg = type(rc)(**{**rc.__dict__, "seed": seed})
            info = train_reward_model(model, tok, renderer, self.train_pairs(variant), rcfg, out,
                                      eval_pairs=self.test_pairs(), resume=self.resume, prefix=self.prefix_cache())
            if self.main:
                write_json(out / "train_summary.json", info)
            st.info = {k: v for k, v in info.items() if k != "history"}

    def evaluate(self, variant: str = CLEAN, seed: int | None = None, force: bool = False) -> dict:
        seed = self.cfg.run.seeds[0] if seed is None else seed
        self.train_rm(variant, seed)
        name = f"evaluate/{variant}/seed-{seed}"
        deps = self._eval_deps(variant, seed)
        path = self.eval_path(variant, seed)
        if self._reusable(name, deps, path, force=force):
            return read_json(path)
        with self.run.stage(name, deps) as st:
            model, _tok, renderer, settings = self.load_rm(variant, seed)
            rb = self._rewardbench()
            heldout = self.test_pairs() if self.cfg.eval.heldout else []
            bf16 = use_bf16(self.cfg.rm.bf16)
            metrics, margins = evaluate(model, renderer, rb, heldout, self.cfg.rm.eval_batch_size, bf16,
                                        prefix=self.prefix_cache(settings.get("frozen_layers", 0)))
            if self.main:
                write_json(path, metrics)
                if "rewardbench" in margins:
                    write_margins(path.with_suffix(".rewardbench.csv"), rb, margins["rewardbench"])
                if "heldout" in margins:
                    write_margins(path.with_suffix(".heldout.csv"), heldout, margins["heldout"])
            st.info = {"rewardbench": metrics.get("rewardbench"),
                       "heldout": {k: v for k, v in metrics.get("heldout", {}).items() if k != "by_source"}}
        return metrics

    def _rewardbench(self):
        if not hasattr(self, "_rb_cache"):
            self._rb_cache = load_rewardbench(self.cfg.eval, self.cfg.data.root, seed=self.cfg.data.seed)
        return self._rb_cache
