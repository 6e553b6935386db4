"""Sweep stages: edited training sets, the poisoning audit, results over variants and seeds, the summary."""

from __future__ import annotations

import logging
import time

import numpy as np

from ..config import config_dict
from ..curation.edits import apply_edit, edit_count, rank_for_edit, variant_name
from ..data import write_pairs
from ..io import read_json, write_csv, write_json
from ..report import to_text, write_report
from ..reward.evaluate import write_results
from .base import CLEAN

log = logging.getLogger(__name__)



class SweepStages:
    """Mixin of the Pipeline: curation, audit, results and summary."""

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
        train = values_by_method = None
        upstream = self._features_deps()
        for mode, method, ratio in self.variants():
            name = variant_name(mode, method, ratio)
            deps = {**upstream, "curation": {"mode": mode, "method": method, "ratio": ratio,
                                                          "scope": cc.scope, "stratify": cc.stratify,
                                                          "seed": cc.seed}}
            folder = self.run.path("curated", name)
            if self._reusable(f"curate/{name}", deps, folder / "train.jsonl", force=force):
                continue
            train = train if train is not None else self.train_pairs(CLEAN)
            if method != "random" and values_by_method is None:
                values_by_method = self.pair_values()
            values = None if method == "random" else values_by_method[method]
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

    # ---- poisoning audit ------------------------------------------------------------------------------
    def _audit_deps(self) -> dict:
        return {**self._features_deps(), "audit": config_dict(self.cfg)["audit"]}

    def audit(self, force: bool = False) -> dict:
        """Plant random flips in the clean training data; fit RM, SAE and features on the planted set; ask
        how well the SAFER score and the planted RM's own margin rank the planted flips first."""
        from .audit import run_audit

        self.data()
        deps = self._audit_deps()
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
        # only results made with the current settings (a resumed run with other settings has stale ones on disk)
        for key, stage, deps in (("sae", "train-sae", self._sae_deps), ("features", "features", self._features_deps),
                                 ("scores", "score", self._features_deps), ("causal", "causal", self._causal_deps),
                                 ("audit", "audit", self._audit_deps)):
            if self.run.done(stage, deps()):
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
                                             "mean_abs_margin_change", "fidelity_pairs", "num_latents", "k", "layer",
                                             "nmse")}
        if key == "features":
            return {"judge": info.get("judge"), "n_selected_safe": info.get("n_selected_safe"),
                    "n_selected_unsafe": info.get("n_selected_unsafe"),
                    "judge_auroc_probe": info.get("judge_auroc_probe"),
                    "compare_without_judge": info.get("compare_without_judge")}
        return info
