"""Analysis stages: activations, the SAE, features, pair scores and the causal test."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ..activations import ActivationCache, CacheBatches, extract_pairs
from ..config import config_dict
from ..curation.score import score_pairs as score_cache
from ..data.load import data_root
from ..errors import DataError, StageError
from ..features.contexts import build_contexts, top_activations
from ..features.document import compare_selections, features_document, score_diagnostics
from ..features.judges import judge_fingerprint, make_judge
from ..features.judges.probe import build_probe
from ..features.judges.probe import evaluate as evaluate_probe
from ..features.salience import compute_salience
from ..features.selection import Selection, select_features
from ..io import read_csv, read_json, save_tensors, write_csv, write_json
from ..models import load_tokenizer
from ..report import write_dashboard
from ..reward.evaluate import SECTIONS
from ..reward.scoring import score_pairs
from ..reward.train import use_bf16
from ..sae import SAEMeta, hookpoint_for, load_sae, save_sae, train_two_stage
from ..sae import evaluate as evaluate_sae
from ..splice import causal_test, reward_fidelity
from .base import CLEAN

log = logging.getLogger(__name__)



class AnalysisStages:
    """Mixin of the Pipeline (see base.PipelineBase for the attributes it uses)."""

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
            items, uninterpretable = build_contexts(cache, tok, examined, values, meta, counts, fc, sal.salience)
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
            probe = self._probe(judge)
            if probe:
                features["judge_probe"] = probe
            write_csv(self.features_dir() / "salience.csv", sal.table())  # outputs only once all went well
            write_json(self.features_dir() / "selection.json", selection.to_json())
            write_json(out, features)
            write_dashboard(features, self.run.path("report", "features.html"))
            statuses = Counter(j.status for j in judgements.values())
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
            train = self.train_pairs(CLEAN)
            model, _tok, renderer, settings = self.load_rm(CLEAN, self.cfg.run.seeds[0])
            # reward margins: sharded over the ranks and gathered; the SAE scores and the files: rank 0 alone
            margin = score_pairs(model, renderer, train, self.cfg.rm.eval_batch_size, use_bf16(self.cfg.rm.bf16),
                                 "reward margins", prefix=self.prefix_cache(settings.get("frozen_layers", 0))).margin
            if not self.main:
                return
            sae, _layer = self.load_sae()
            cache = ActivationCache(self.activations_dir("pairs"))
            sel = self.selection()
            scores = score_cache(cache, self.encoder(sae), sel.safe, sel.unsafe, self.cfg.features.batch_size)
            if [p.id for p in train] != scores.pair_ids:
                raise StageError("activation cache and training pairs disagree; rerun `safer extract`")
            rows = []
            for i, p in enumerate(train):
                top = scores.top_features(i, 3)
                rows.append({"id": p.id, "source": p.source, "kind": p.kind, "safer_score": float(scores.score[i]),
                             "a_chosen": float(scores.a_chosen[i]), "a_rejected": float(scores.a_rejected[i]),
                             "positions_chosen": int(scores.positions[i, 0]),
                             "positions_rejected": int(scores.positions[i, 1]), "reward_margin": float(margin[i]),
                             "top_features": " ".join(f"{lat}:{val:+.3f}" for lat, val in top)})
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

    # ---- causal test --------------------------------------------------------------------------------
    def _causal_deps(self) -> dict:
        d = config_dict(self.cfg)
        return {**self._features_deps(), "causal": d["causal"], "eval": d["eval"]}

    def causal(self, force: bool = False) -> dict:
        """Zero the selected latents inside the clean RM (reconstruction error kept) and compare the margin
        drop on safety and chat evaluation pairs with random latent sets of the same size."""
        self.features()
        deps = self._causal_deps()
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
