"""What the stage declarations in registry.py are made of, stage by stage: what a stage needs (`*_needs`), the
config values beside its sections that enter its fingerprint (`*_values`), the part of its record the summary
shows (`summary_*`), and `work`, a stage function imported on its first call."""

from __future__ import annotations

from importlib import import_module

from ..config import config_dict
from ..curation.variants import Variant
from .audit import repeat_plan, shares_sae
from .graph import CLEAN, Key
from .stages import inputs
from .stages.inputs import warmup_fixed


def _train_needs(cfg, key: Key) -> list[tuple[str, Key]]:
    if key.variant == CLEAN:
        return [("data", Key())]
    if Variant.parse(key.variant).mode == "fold":
        return [("data", Key()), ("folds", Key())]  # one stage writes every fold
    return [("data", Key()), ("curate", Key(key.variant))]


def _evaluate_needs(cfg, key: Key) -> list[tuple[str, Key]]:
    return [("train-rm", key)] + ([("pool", Key())] if cfg.eval.pool else [])


def _audit_needs(cfg, key: Key) -> list[tuple[str, Key]]:
    out = [("data", Key())] + ([("train-sae", Key())] if shares_sae(cfg) else [])
    for plan in repeat_plan(cfg):
        if plan.shared is not None:
            out += [("curate", Key(plan.shared))] + [
                ("train-rm", Key(plan.shared, s)) for s in plan.copied_seeds
            ]
    return list(dict.fromkeys(out))


class work:
    """A stage function (`module` under experiment/stages), imported on its first call: the planner, `--dry-run`
    and the command line read the declarations below without importing torch or transformers."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, ctx, key: Key) -> dict | None:
        return getattr(import_module(f"{__package__}.stages.{self.module}"), self.name)(ctx, key)

    def __repr__(self) -> str:
        return f"stages.{self.module}.{self.name}"


def _analysis_needs(*names: str):
    """Needs of the stages that read the attribution when it runs (features, score)."""

    def needs(cfg, key: Key) -> list[tuple[str, Key]]:
        return [(n, Key()) for n in names] + (
            [("attribute", Key())] if inputs.attribution_enabled(cfg) else []
        )

    return needs


EXISTING_KEYS = ("reward_model", "reward_model_revision", "dtype")
"""Keys of `model` that only an existing reward model reads."""
RENDER_KEYS = (
    "max_length",
    "min_prompt_tokens",
    "template",
    "system_prompt",
    "trust_remote_code",
    "allow_pickle",
)
"""Keys of `model` that loading and rendering an existing reward model read beside those."""


def _train_values(cfg, key: Key) -> dict:
    """A trained RM's settings (without the keys only an existing RM reads, so setting one does not retrain
    the sweep); for an existing RM standing in for the clean one, only what loading and rendering it read."""
    d = config_dict(cfg)
    if key.variant == CLEAN and cfg.model.reward_model:
        return {"model": {k: d["model"][k] for k in (*RENDER_KEYS, *EXISTING_KEYS)}, "rm": {}}
    model = {k: v for k, v in d["model"].items() if k not in EXISTING_KEYS}
    values = {"model": model, "rm": {**d["rm"], "seed": key.seed}}
    if warmup_fixed():  # transformers 4 gave no warm-up before the fix: its models trained then are others
        values["rm_warmup"] = "share of steps"
    return values


def _audit_values(cfg, key: Key) -> dict:
    """Beside its sections: each repeat's seeds (from run.seeds) and the bootstrap size of its intervals."""
    plans = [[p.seed, p.plant_seed, list(p.copied_seeds)] for p in repeat_plan(cfg)]
    return {"audit_plan": plans, "bootstrap": cfg.eval.bootstrap}


def _causal_values(cfg, key: Key) -> dict:
    """The causal test reads RewardBench, RewardBench 2 (and the held-out split), not the pool or the extra
    sets, and the bootstrap size of its intervals."""
    keys = ("rewardbench", "rewardbench_hub", "rewardbench_split", "max_rewardbench_pairs", "bootstrap")
    keys += ("rewardbench2", "rewardbench2_split")
    return {"eval": {k: getattr(cfg.eval, k) for k in keys}}


def _eval_values(cfg) -> dict:
    """The eval section without the bootstrap size (it changes intervals, not evaluations)."""
    return {k: v for k, v in config_dict(cfg)["eval"].items() if k != "bootstrap"}


def _summary_sae(info: dict) -> dict:
    return {
        k: info.get(k)
        for k in (
            "fvu",
            "l0",
            "dead_fraction",
            "splice_accuracy",
            "clean_accuracy",
            "mean_abs_margin_change",
            "fidelity_pairs",
            "num_latents",
            "k",
            "layer",
            "nmse",
        )
    }


def _summary_features(info: dict) -> dict:
    return {
        k: info.get(k)
        for k in (
            "judge",
            "ranking",
            "specific",
            "specificity_tested",
            "n_selected_safe",
            "n_selected_unsafe",
            "judge_auroc_probe",
            "compare_without_judge",
        )
    }


def _summary_attribution(info: dict) -> dict:
    check = info.get("check") or {}
    return {
        **{k: v for k, v in info.items() if k != "check"},
        "check_pearson": check.get("pearson"),
        "check_slope": check.get("slope"),
        "check_points": check.get("points"),
    }
