"""The pipeline: each stage reads artifacts of the run directory and writes new ones; `run_all` chains them.
Finished stages whose inputs and settings are unchanged are skipped on `--resume`."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from .. import distributed
from ..activations import ActivationCache, CacheBatches, extract_pairs
from ..config import Config, config_dict
from ..curation.edits import apply_edit, edit_count, rank_for_edit, variant_name
from ..curation.score import score_pairs as score_cache
from ..data import build_pairs, read_pairs, write_pairs
from ..data.load import data_root, expand, iter_source_rows
from ..errors import DataError, ModelError, StageError
from ..features.contexts import ContextOptions, build_contexts, top_activations
from ..features.document import compare_selections, features_document, score_diagnostics
from ..features.judges import judge_fingerprint, make_judge
from ..features.judges.probe import build_probe
from ..features.judges.probe import evaluate as evaluate_probe
from ..features.salience import compute_salience
from ..features.selection import Selection, select_features
from ..io import read_csv, read_json, save_tensors, sha256_file, write_csv, write_json
from ..models import Renderer, load_reward_model, load_tokenizer
from ..models.prefix_cache import PrefixCache
from ..report import to_text, write_dashboard, write_report
from ..reward.evaluate import SECTIONS, evaluate, load_rewardbench, write_margins, write_results
from ..reward.scoring import score_pairs
from ..reward.train import RENDER_FILE, train_reward_model, use_bf16
from ..sae import SAEMeta, hookpoint_for, load_sae, save_sae, train_two_stage
from ..sae import evaluate as evaluate_sae
from ..splice import causal_test, reward_fidelity
from .rundir import RunDir, fingerprint

log = logging.getLogger(__name__)
CLEAN = "clean"


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise StageError("run.device=cuda but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


class Pipeline:
    """Stages of one run. `resume=True` reuses finished stages; a stage asked for by name always reruns."""

    def __init__(self, cfg: Config, resume: bool = True):
        self.cfg = cfg
        self.resume = resume
        distributed.init()
        self.main = distributed.is_main()
        self.run = RunDir(cfg.run.path, config_dict(cfg))
        self.device = pick_device(cfg.run.device)
        self.started = time.time()

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
        return sha256_file(path) if path.is_file() else None

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

    # ---- activations ----------------------------------------------------------------------------------
    def layer(self, model=None) -> int:
        """The configured layer, or 3/4 of the depth (rounded) when unset."""
        if self.cfg.activations.layer is not None:
            return self.cfg.activations.layer
        from ..models.layers import num_layers

        if model is None:
            from transformers import AutoConfig

            n = AutoConfig.from_pretrained(str(self.rm_dir(CLEAN, self.cfg.run.seeds[0]))).num_hidden_layers
        else:
            n = num_layers(model)
        return max(1, round(0.75 * n))

    def _extract_deps(self) -> dict:
        return {**self._rm_deps(CLEAN, self.cfg.run.seeds[0]), "activations": config_dict(self.cfg)["activations"]}

    def activations_dir(self, which: str) -> Path:
        return self.run.path("activations", which)

    def extract(self, force: bool = False) -> None:
        """Activation caches of the clean reward model: `pairs` (every training pair, the position policy)
        and `general` (the chat pairs' texts, all tokens) for SAE stage 1."""
        seed = self.cfg.run.seeds[0]
        self.train_rm(CLEAN, seed)
        deps = self._extract_deps()
        outputs = [self.activations_dir(w) / "index.json" for w in ("pairs", "general", "heldout")]
        if self._reusable("extract", deps, *outputs, force=force):
            return
        ac = self.cfg.activations
        with self.run.stage("extract", deps) as st:
            model, _tok, renderer, settings = self.load_rm(CLEAN, seed)
            layer = self.layer(model)
            frozen = settings.get("frozen_layers", 0)
            prefix = self.prefix_cache(frozen) if frozen else None
            bf16 = use_bf16(ac.bf16)
            train = self.train_pairs(CLEAN)
            general = train if ac.general_kind == "all" else [p for p in train if p.kind == "chat"]
            if not general:
                raise StageError("no chat pairs for SAE stage 1 (activations.general_kind=chat); "
                                 "set activations.general_kind=all")
            info = {}
            heldout = self.test_pairs() or train[: max(1, len(train) // 10)]
            for which, pairs, policy in (("pairs", train, ac.positions), ("general", general, ac.general_positions),
                                         ("heldout", heldout, ac.positions)):
                index = extract_pairs(model, renderer, pairs, layer, policy, self.activations_dir(which),
                                      min_gap=ac.min_gap, standardize_vectors=ac.standardize,
                                      batch_size=ac.batch_size, bf16=bf16, shard_vectors=ac.shard_vectors,
                                      dtype=ac.dtype, prefix=prefix, desc=f"extracting {which}")
                info[which] = {"vectors": index["vectors"], "pairs": len(pairs), "tokens": index["tokens"],
                               "policy": policy}
            st.info = {"layer": layer, **info}

    # ---- SAE ------------------------------------------------------------------------------------------
    def _sae_deps(self) -> dict:
        return {**self._extract_deps(), "sae": config_dict(self.cfg)["sae"]}

    def sae_dir(self) -> Path:
        return self.run.path("sae")

    def load_sae(self, root: str | Path | None = None):
        """(SAE, layer): the run's SAE, or the one at `root`, checked against the cached layer's width and index."""
        layer = self.run.info("extract").get("layer")
        if layer is None:
            raise StageError("no extraction recorded in the manifest; run `safer extract` first")
        d_in = ActivationCache(self.activations_dir("pairs")).d
        root = Path(root) if root else self.sae_dir()
        hookpoint = hookpoint_for(layer)
        if (root / "cfg.json").is_file():  # the hookpoint folder itself
            root, hookpoint = root.parent, root.name
        return load_sae(root, hookpoint, d_in=d_in, layer=layer, device=self.device).sae, layer

    def train_sae(self, force: bool = False) -> dict:
        """Two-stage SAE (general text, then the safety pairs), its metrics on held-out vectors and its
        reward fidelity when spliced into the clean RM."""
        self.extract()
        deps = self._sae_deps()
        metrics_path = self.sae_dir() / "metrics.json"
        if self._reusable("train-sae", deps, metrics_path, force=force):
            return read_json(metrics_path)
        sc = self.cfg.sae
        with self.run.stage("train-sae", deps) as st:
            layer = self.run.info("extract")["layer"]
            general = ActivationCache(self.activations_dir("general"))
            pairs = ActivationCache(self.activations_dir("pairs"))
            heldout = ActivationCache(self.activations_dir("heldout"))
            if sc.path:
                sae, result = self.load_sae(sc.path)[0], None
            else:
                result = train_two_stage(CacheBatches(general, sc.batch_size, seed=sc.seed),
                                         CacheBatches(pairs, sc.batch_size, seed=sc.seed + 1), sc, device=self.device)
                sae = result.sae
            held = evaluate_sae(sae, heldout.batches(sc.batch_size))
            train_metrics = evaluate_sae(sae, pairs.batches(sc.batch_size))
            model, _tok, renderer, settings = self.load_rm(CLEAN, self.cfg.run.seeds[0])
            prefix = self.prefix_cache(settings.get("frozen_layers", 0))
            fidelity = reward_fidelity(model, renderer, self.test_pairs() + self._rewardbench(), sae, layer,
                                       batch_size=self.cfg.rm.eval_batch_size, bf16=use_bf16(self.cfg.rm.bf16),
                                       prefix=prefix)
            metrics = {
                "layer": layer, "d_in": sae.d_in, "num_latents": sae.num_latents, "k": sae.k,
                "fvu": held.fvu, "nmse": held.nmse, "l0": held.l0, "heldout_dead_fraction": held.dead_fraction,
                "dead_fraction": train_metrics.dead_fraction, "train_fvu": train_metrics.fvu,
                "heldout_vectors": held.vectors, "train_vectors": train_metrics.vectors,
                "splice_accuracy": fidelity["splice_accuracy"], "clean_accuracy": fidelity["clean_accuracy"],
                "mean_abs_margin_change": fidelity["mean_abs_margin_change"], "fidelity_pairs": fidelity["pairs"],
                "training": result.summary() if result else {"loaded_from": sc.path},
            }
            if self.main:
                save_sae(sae, self.sae_dir(), hookpoint_for(layer),
                         SAEMeta(layer=layer, position_policy=self.cfg.activations.positions,
                                 standardised=self.cfg.activations.standardize, training=metrics["training"]))
                write_json(metrics_path, metrics)
            st.info = {k: v for k, v in metrics.items() if k != "training"}
        return metrics

    # ---- features -------------------------------------------------------------------------------------
    def _features_deps(self) -> dict:
        d = config_dict(self.cfg)
        return {**self._sae_deps(), "features": d["features"], "judge": judge_fingerprint(self.cfg.judge)}

    def features_dir(self) -> Path:
        return self.run.path("features")

    def encoder(self, sae):
        def encode(x):
            enc = sae.encode(x.to(sae.device))
            return enc.acts.float().cpu(), enc.indices.cpu()
        return encode

    def features(self, force: bool = False) -> dict:
        """Salience of every latent, contexts of the top ones, the judge's verdicts, the selection, and the
        feature dashboard."""
        self.train_sae()
        deps = self._features_deps()
        out = self.features_dir() / "features.json"
        if self._reusable("features", deps, out, force=force):
            return read_json(out)
        fc = self.cfg.features
        with self.run.stage("features", deps) as st:
            if not self.main:  # cheap and single-process: rank 0 does it, the others wait at the stage's end
                return None
            sae, layer = self.load_sae()
            cache = ActivationCache(self.activations_dir("pairs"))
            encode = self.encoder(sae)
            sal = compute_salience(cache, encode, sae.num_latents, fc.normalize, fc.batch_size)
            examined = [int(i) for i in sal.ranking()[:fc.examine]]
            values, meta, counts = top_activations(cache, encode, examined, fc.top_m, fc.batch_size)
            tok = load_tokenizer(str(self.rm_dir(CLEAN, self.cfg.run.seeds[0])))
            opts = ContextOptions(fc.top_m, fc.window, fc.per_token, fc.max_contexts, fc.max_distinct_tokens,
                                  fc.min_contexts)
            items, uninterpretable = build_contexts(cache, tok, examined, values, meta, counts, opts, sal.salience)
            judge = make_judge(self.cfg.judge, cache_dir=self.features_dir() / "judgements")
            to_judge = [it for it in items if it.latent not in uninterpretable]
            judgements = {j.latent: j for j in judge.judge(to_judge)}
            use_judge = self.cfg.judge.kind != "none"
            usable = [j for j in judgements.values() if j.score is not None]
            if use_judge and to_judge and not usable:
                bad = next(iter(judgements.values()))
                raise StageError(f"judge {self.cfg.judge.kind} ({judge.model}): no usable verdict for any of "
                                 f"{len(to_judge)} latents; latent {bad.latent}: {bad.status}: {bad.raw[:120]!r}")
            selection = select_features(sal.salience, examined, judgements, fc.threshold, fc.top_n,
                                        uninterpretable, use_judge=use_judge)
            by_salience = select_features(sal.salience, examined, None, fc.threshold, fc.top_n, uninterpretable,
                                          use_judge=False)
            features = features_document(sal, items, judgements, selection, uninterpretable, self.cfg.judge,
                                         layer, fc.normalize)
            features["compare_without_judge"] = compare_selections(selection, by_salience)
            write_csv(self.features_dir() / "salience.csv", sal.table())  # outputs only once all went well
            write_json(self.features_dir() / "selection.json", selection.to_json())
            write_json(out, features)
            write_dashboard(features, self.run.path("report", "features.html"))
            statuses = Counter(j.status for j in judgements.values())
            probe = self._probe(judge)
            if probe:
                features["judge_probe"] = probe
                write_json(out, features)
            st.info = {"judge": self.cfg.judge.kind, "judge_auroc_probe": probe.get("auroc") if probe else None, "examined": len(examined),
                       "uninterpretable": len(uninterpretable), "judge_statuses": dict(statuses),
                       "n_selected_safe": len(selection.safe), "n_selected_unsafe": len(selection.unsafe),
                       "compare_without_judge": features["compare_without_judge"]}
        return features

    def _probe(self, judge) -> dict | None:
        """The judge's AUROC on the labelled probe set from the data mirror (offline judges only)."""
        if self.cfg.judge.kind not in ("embedding", "hf"):
            return None
        try:
            probe = build_probe(data_root(self.cfg.data.root))
        except (FileNotFoundError, DataError) as err:
            log.info("judge probe skipped: %s", err)
            return None
        return evaluate_probe(judge.judge(probe.items), probe)

    def selection(self) -> Selection:
        data = read_json(self.features_dir() / "selection.json")
        return Selection(data["safe"], data["unsafe"], data.get("candidates", []))

    # ---- pair scores ----------------------------------------------------------------------------------
    def scores_path(self) -> Path:
        return self.run.path("scores", "pairs.csv")

    def score(self, force: bool = False) -> None:
        """SAFER score of every training pair (with per-feature contributions) and the clean RM's margin."""
        self.features()
        deps = self._features_deps()
        if self._reusable("score", deps, self.scores_path(), force=force):
            return
        with self.run.stage("score", deps) as st:
            sae, _layer = self.load_sae()
            cache = ActivationCache(self.activations_dir("pairs"))
            sel = self.selection()
            scores = score_cache(cache, self.encoder(sae), sel.safe, sel.unsafe, self.cfg.features.batch_size)
            train = self.train_pairs(CLEAN)
            if [p.id for p in train] != scores.pair_ids:
                raise StageError("activation cache and training pairs disagree; rerun `safer extract`")
            model, _tok, renderer, settings = self.load_rm(CLEAN, self.cfg.run.seeds[0])
            margin = score_pairs(model, renderer, train, self.cfg.rm.eval_batch_size, use_bf16(self.cfg.rm.bf16),
                                 "reward margins", prefix=self.prefix_cache(settings.get("frozen_layers", 0))).margin
            rows = []
            for i, p in enumerate(train):
                top = scores.top_features(i, 3)
                rows.append({"id": p.id, "source": p.source, "kind": p.kind, "safer_score": float(scores.score[i]),
                             "a_chosen": float(scores.a_chosen[i]), "a_rejected": float(scores.a_rejected[i]),
                             "positions_chosen": int(scores.positions[i, 0]),
                             "positions_rejected": int(scores.positions[i, 1]), "reward_margin": float(margin[i]),
                             "top_features": " ".join(f"{lat}:{val:+.3f}" for lat, val in top)})
            if not self.main:
                return
            write_csv(self.scores_path(), rows)
            save_tensors(self.run.path("scores", "contributions.safetensors"),
                         {"contributions": torch.from_numpy(scores.contributions.astype(np.float32)),
                          "latents": torch.tensor(scores.latents, dtype=torch.int64),
                          "signs": torch.tensor(scores.signs, dtype=torch.int64)})
            st.info = score_diagnostics(train, scores.score, margin)

    def pair_values(self) -> dict[str, np.ndarray]:
        rows = read_csv(self.scores_path())
        return {"safer": np.array([float(r["safer_score"]) for r in rows]),
                "reward_margin": np.array([float(r["reward_margin"]) for r in rows])}

    # ---- curation -------------------------------------------------------------------------------------
    def variants(self) -> list[tuple[str, str, float]]:
        cc = self.cfg.curation
        return [(mode, method, float(r)) for mode, ratios in (("poison", cc.poison_ratios),
                                                              ("denoise", cc.denoise_ratios))
                for method in cc.methods for r in ratios]

    def curate(self, force: bool = False) -> None:
        """One edited training set per (mode, method, ratio), with a record of every changed pair."""
        self.score()
        cc = self.cfg.curation
        train = None
        for mode, method, ratio in self.variants():
            name = variant_name(mode, method, ratio)
            deps = {**self._features_deps(), "curation": {"mode": mode, "method": method, "ratio": ratio,
                                                          "scope": cc.scope, "stratify": cc.stratify,
                                                          "seed": cc.seed}}
            folder = self.run.path("curated", name)
            if self._reusable(f"curate/{name}", deps, folder / "train.jsonl", force=force):
                continue
            train = train if train is not None else self.train_pairs(CLEAN)
            values = None if method == "random" else self.pair_values()[method]
            with self.run.stage(f"curate/{name}", deps) as st:
                if not self.main:
                    continue
                candidates = [i for i, p in enumerate(train) if cc.scope == "all" or p.kind == "safety"]
                groups = [p.source for p in train] if cc.stratify else None
                chosen = rank_for_edit(mode, method, values, edit_count(len(train), ratio), candidates, cc.seed,
                                       groups)
                edit = apply_edit(train, chosen, mode, method, values)
                write_pairs(folder / "train.jsonl", edit.pairs)
                write_csv(folder / "edits.csv", edit.records)
                info = {"variant": name, "mode": mode, "method": method, "ratio": ratio, "edited": len(edit.records),
                        "train_pairs": len(edit.pairs), "source_mix": edit.source_mix()}
                write_json(folder / "summary.json", info)
                st.info = info

    # ---- causal test --------------------------------------------------------------------------------
    def causal(self, force: bool = False) -> dict:
        """Zero the selected latents inside the clean RM (reconstruction error kept) and compare the margin
        drop on safety and chat evaluation pairs with random latent sets of the same size."""
        self.features()
        deps = {**self._features_deps(), "causal": config_dict(self.cfg)["causal"], "eval": config_dict(self.cfg)["eval"]}
        out = self.run.path("causal", "results.json")
        if self._reusable("causal", deps, out, force=force):
            return read_json(out)
        cc = self.cfg.causal
        with self.run.stage("causal", deps) as st:
            sae, layer = self.load_sae()
            model, _tok, renderer, settings = self.load_rm(CLEAN, self.cfg.run.seeds[0])
            groups = self._causal_groups(cc.max_pairs, cc.seed)
            result = causal_test(model, renderer, sae, layer, self.selection().latents, groups, cc.draws, cc.seed,
                                 batch_size=self.cfg.rm.eval_batch_size, bf16=use_bf16(self.cfg.rm.bf16),
                                 prefix=self.prefix_cache(settings.get("frozen_layers", 0)))
            if self.main:
                write_json(out, result)
            st.info = result
        return result

    def _causal_groups(self, max_pairs: int | None, seed: int) -> dict[str, list]:
        """Safety and chat evaluation pairs: RewardBench's Safety and Chat sections where present, else the
        held-out pairs by kind."""
        rb = self._rewardbench()
        groups = {"safety": [p for p in rb if p.meta.get("subset") in SECTIONS["Safety"]],
                  "chat": [p for p in rb if p.meta.get("subset") in SECTIONS["Chat"]]}
        test = self.test_pairs()
        for kind in groups:
            if not groups[kind]:
                groups[kind] = [p for p in test if p.kind == kind]
        rng = np.random.default_rng(seed)
        return {k: ([v[i] for i in sorted(rng.choice(len(v), max_pairs, replace=False))]
                    if max_pairs is not None and len(v) > max_pairs else v) for k, v in groups.items() if v}

    # ---- poisoning audit ------------------------------------------------------------------------------
    def audit(self, force: bool = False) -> dict:
        """Plant random flips in the clean training data; fit RM, SAE and features on the planted set; ask
        how well the SAFER score and the planted RM's own margin rank the planted flips first."""
        from .audit import run_audit

        self.data()
        d = config_dict(self.cfg)
        deps = {**self._features_deps(), "audit": d["audit"]}
        out = self.run.path("audit", "results.json")
        if self._reusable("audit", deps, out, force=force):
            return read_json(out)
        with self.run.stage("audit", deps) as st:
            result = run_audit(self)
            if self.main:
                write_json(out, result)
            st.info = result
        return result

    # ---- results ------------------------------------------------------------------------------------
    def variant_names(self) -> list[str]:
        return [CLEAN] + [variant_name(*v) for v in self.variants()]

    def results_rows(self) -> list[dict]:
        """One row per variant with the mean and std over the seeds evaluated so far."""
        rows = []
        for name in self.variant_names():
            runs = [read_json(self.eval_path(name, s)) for s in self.cfg.run.seeds if self.eval_path(name, s).is_file()]
            if not runs:
                continue
            values: dict[str, list[float]] = {}
            for r in runs:
                for k, v in r.get("rewardbench", {}).items():
                    values.setdefault(k, []).append(v)
                for k in ("safety", "chat"):
                    if r.get("heldout", {}).get(k) is not None:
                        values.setdefault(f"heldout {k}", []).append(r["heldout"][k])
            metrics = {k: {"mean": float(np.mean(v)), "std": float(np.std(v)) if len(v) > 1 else 0.0}
                       for k, v in values.items()}
            mode, method, ratio = (CLEAN, None, None) if name == CLEAN else name.split("-", 2)
            row = {"variant": name, "mode": mode, "method": method, "ratio": None if ratio is None else float(ratio),
                   "n_seeds": len(runs), "metrics": metrics}
            summary_file = self.run.path("curated", name, "summary.json")
            if summary_file.is_file():
                row["source_mix"] = read_json(summary_file)["source_mix"]
            rows.append(row)
        return rows

    # ---- summary -------------------------------------------------------------------------------------
    def results(self) -> dict[str, dict]:
        """Evaluation of every (variant, seed) present on disk, keyed `variant` (seed 0) or `variant@seed`."""
        out = {}
        eval_root = self.run.path("eval")
        for variant_dir in sorted(p for p in eval_root.iterdir() if p.is_dir()) if eval_root.is_dir() else []:
            for f in sorted(variant_dir.glob("seed-*.json")):
                seed = int(f.stem.split("-", 1)[1])
                key = variant_dir.name if len(self.cfg.run.seeds) == 1 else f"{variant_dir.name}@{seed}"
                out[key] = read_json(f)
        return out

    def summary(self) -> dict:
        if not self.main:
            return {}
        write_results(self.run.path("eval"), self.results())
        rows = self.results_rows()
        variants = {}
        for row in rows:
            m = row["metrics"]
            rb = {k: v["mean"] for k, v in m.items() if not k.startswith("heldout")}
            variants[row["variant"]] = {
                "rewardbench": rb,
                "heldout": {"safety": m.get("heldout safety", {}).get("mean"),
                            "chat": m.get("heldout chat", {}).get("mean")},
                "n_seeds": row["n_seeds"],
                "std": {k: v["std"] for k, v in m.items()},
            }
            if "source_mix" in row:
                variants[row["variant"]]["source_mix"] = row["source_mix"]
        stages = self.run.stage_seconds()
        summary = {"run": self.cfg.run.name, "variants": variants, "data": self.run.info("data")}
        for key, stage in (("sae", "train-sae"), ("features", "features"), ("scores", "score"),
                           ("causal", "causal"), ("audit", "audit")):
            if self.run.done(stage):
                summary[key] = self._summary_part(key, self.run.info(stage))
        summary["disk_bytes"] = self.run.disk_usage()
        summary["timing"] = {"total_s": round(sum(stages.values()), 1),
                             "wall_s": round(time.time() - self.started, 1), "stages": stages}
        write_json(self.run.path("summary.json"), summary)
        write_report(self.run.root, rows, summary, read_json(self.features_dir() / "features.json")
                     if (self.features_dir() / "features.json").is_file() else None)
        log.info("results (accuracy, 0..1; mean over %d seed(s)):\n%s", len(self.cfg.run.seeds),
                 to_text(rows))
        return summary

    def _summary_part(self, key: str, info: dict) -> dict:
        if key == "sae":
            return {k: info.get(k) for k in ("fvu", "l0", "dead_fraction", "splice_accuracy", "clean_accuracy",
                                             "mean_abs_margin_change", "num_latents", "k", "layer", "nmse")}
        if key == "features":
            return {"judge": info.get("judge"), "n_selected_safe": info.get("n_selected_safe"),
                    "n_selected_unsafe": info.get("n_selected_unsafe"),
                    "judge_auroc_probe": info.get("judge_auroc_probe"),
                    "compare_without_judge": info.get("compare_without_judge")}
        return info

    def run_all(self) -> dict:
        self.run.save()
        self.data()
        for seed in self.cfg.run.seeds:
            self.evaluate(CLEAN, seed)
        self.features()
        self.score()
        self.curate()
        for name in self.variant_names()[1:]:
            for seed in self.cfg.run.seeds:
                self.evaluate(name, seed)
        if self.cfg.causal.enabled:
            self.causal()
        if self.cfg.audit.enabled:
            self.audit()
        return self.summary()


