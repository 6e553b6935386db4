"""Every stage of a run, declared once, in run order. This list is the pipeline: the runner resolves what each
stage needs, the planner says what reruns and why, the CLI builds a command per stage, `safer clear` knows
each stage's folder, the summary each stage's part. To add a stage, add a `Stage(...)` here and its function
under experiment/stages/ (the README's development section has a worked example)."""

from __future__ import annotations

from ..features.judges import judge_fingerprint
from . import artifacts as A
from .graph import Command, Key, Stage, need, per_edit, per_model, resolve, trained_models
from .stage_rules import (  # noqa: F401  (EXISTING_KEYS, RENDER_KEYS: re-exported)
    EXISTING_KEYS,
    RENDER_KEYS,
    _analysis_needs,
    _audit_needs,
    _audit_values,
    _causal_values,
    _eval_values,
    _evaluate_needs,
    _summary_attribution,
    _summary_features,
    _summary_sae,
    _train_needs,
    _train_values,
    work,
)
from .stages import inputs

STAGES: list[Stage] = [
    Stage(
        "data",
        work("reward", "data"),
        needs=need(),
        sections=("data",),
        inputs=inputs.data_inputs,
        rank0=True,
        writes=(A.TRAIN, A.TEST),
    ),
    Stage(
        "train-rm",
        work("reward", "train_rm"),
        needs=_train_needs,
        sections=("model", "rm"),
        over=trained_models,
        values=_train_values,
        inputs=inputs.train_inputs,
        by_content=("curate",),  # an edited set that comes out byte-identical is not trained on again
        writes=(A.RM_WEIGHTS_CONFIG,),
        folder="rm",
        command=Command(
            "Prepare the data and train a reward model (Bradley-Terry) into <run>/rm/<variant>/seed-<s>.",
            "reward models: {run}/rm",
            summary=False,
        ),
    ),
    Stage(
        "pool",
        work("reward", "pool"),
        needs=need("data"),
        values=inputs.pool_settings,
        inputs=inputs.pool_inputs,
        rank0=True,
        enabled=lambda cfg: cfg.eval.pool,
        writes=(A.POOL,),
        folder="pool",
        command=Command(
            "Build the evaluation pool: source pairs outside the run's data, no prompt shared with training.",
            "evaluation pool: {run}/pool/pairs.jsonl",
            summary=False,
        ),
    ),
    Stage(
        "evaluate",
        work("reward", "evaluate_model"),
        needs=_evaluate_needs,
        sections=("eval",),
        inputs=inputs.eval_inputs,
        over=per_model,
        writes=(A.EVAL,),
        folder="eval",
        command=Command(
            "Evaluate a reward model (trained, or an existing one with --set model.reward_model=ORG/RM): RewardBench "
            "sections, RewardBench 2 subsets (eval.rewardbench2), held-out safety/chat accuracy and extra sets, "
            "with intervals.",
            "results: {run}/eval/results.csv",
        ),
    ),
    Stage(
        "extract",
        work("analysis", "extract"),
        needs=need("train-rm"),
        sections=("activations",),
        cache=True,
        writes=tuple(f"activations/{w}/index.json" for w in inputs.KEPT_CACHES),
        folder="activations",
        command=Command(
            "Cache the clean reward model's hidden states at the chosen layer and positions.",
            "activations: {run}/activations",
        ),
    ),
    Stage(
        "train-sae",
        work("analysis", "fit_sae"),
        needs=need("extract"),
        sections=("sae",),
        writes=(A.SAE_METRICS,),
        folder="sae",
        summary=_summary_sae,
        summary_key="sae",
        command=Command(
            "Train the two-stage TopK SAE on the cached activations; report FVU, L0, dead latents "
            "and reward fidelity.",
            "SAE: {run}/sae",
        ),
    ),
    Stage(
        "attribute",
        work("attribution", "attribute"),
        needs=need("train-sae"),
        sections=("attribution",),
        rank0=True,
        enabled=inputs.attribution_enabled,
        writes=(A.ATTRIBUTION, A.ATTRIBUTION_SUMMARY),
        folder="attribution",
        summary=_summary_attribution,
        summary_key="attribution",
        command=Command(
            "Reward attribution of every SAE latent on every training pair (z_i * d_i . dr/dh, one backward "
            "pass per batch), checked against exact ablation on a sample.",
            "attribution: {run}/attribution",
        ),
    ),
    Stage(
        "features",
        work("analysis", "features"),
        needs=_analysis_needs("train-sae"),
        sections=("features", "judge"),
        rank0=True,
        writes=(A.FEATURES, A.SELECTION),
        folder="features",
        summary=_summary_features,
        command=Command(
            "Salience of every latent, contexts of the top ones, judge verdicts, selection of "
            "safety features, and the feature dashboard.",
            "features: {run}/features, dashboard: {run}/report/features.html",
        ),
    ),
    Stage(
        "score",
        work("analysis", "score"),
        needs=_analysis_needs("features"),
        writes=(A.SCORES,),
        folder="scores",
        summary=dict,
        summary_key="scores",
        command=Command(
            "Score every training pair with the selected features (and the clean RM's margin).",
            "scores: {run}/scores/pairs.csv",
        ),
    ),
    Stage(
        "curate",
        work("sweep", "curate"),
        needs=need("score"),
        sections=("curation",),
        over=per_edit,
        rank0=True,
        values=inputs.edit_settings,
        writes=(A.CURATED_TRAIN,),
        folder="curated",
        command=Command(
            "Write the poisoned and denoised training sets (safer, random and reward-margin selection).",
            "edited sets: {run}/curated",
        ),
    ),
    Stage(
        "folds",
        work("detect", "folds"),
        needs=need("data"),
        values=inputs.fold_settings,
        rank0=True,
        enabled=lambda cfg: cfg.detect.enabled and cfg.detect.folds >= 2,
        writes=(A.FOLD_ASSIGNMENT,),
    ),
    Stage(
        "detect",
        work("detect", "detect"),
        needs=inputs.detect_needs,
        sections=("detect",),
        enabled=lambda cfg: cfg.detect.enabled,
        writes=(A.DETECT_SCORES, A.DETECT_SUMMARY),
        folder="detect",
        summary=dict,
        command=Command(
            "Every detector of mislabelled pairs side by side: SAFER score, in-sample and out-of-fold margin, "
            "seed ensemble, SAE probe, combinations (detect.enabled=true).",
            "detectors: {run}/detect/scores.csv",
        ),
    ),
    Stage(
        "inspect",
        work("detect", "inspect"),
        needs=need("detect"),
        sections=("inspect",),
        rank0=True,
        enabled=lambda cfg: cfg.detect.enabled,
        writes=(A.INSPECT_SUSPECTS, A.INSPECT_REPORT),
        folder="inspect",
        summary=dict,
    ),
    Stage(
        "causal",
        work("sweep", "causal"),
        needs=need("features"),
        sections=("causal",),
        values=_causal_values,
        enabled=lambda cfg: cfg.causal.enabled,
        writes=(A.CAUSAL,),
        folder="causal",
        summary=dict,
        command=Command(
            "Causal test: zero (or scale) the selected latents inside the RM; RewardBench sections and held-out "
            "accuracy against the unedited RM and random latents.",
            "causal test: {run}/causal/results.json",
        ),
    ),
    Stage(
        "audit",
        work("detect", "audit"),
        needs=_audit_needs,
        values=_audit_values,
        sections=("model", "rm", "activations", "sae", "attribution", "features", "judge", "detect", "audit"),
        enabled=lambda cfg: cfg.audit.enabled,
        writes=(A.AUDIT,),
        folder="audit",
        summary=dict,
        command=Command(
            "Poisoning audit: plant random flips and measure how well every detector finds them.",
            "audit: {run}/audit/results.json",
        ),
    ),
]

SECTION_VALUES = {"judge": lambda cfg: judge_fingerprint(cfg.judge), "eval": _eval_values}
"""Sections that enter fingerprints in another form than their config values (the judge's: what changes
its verdicts, e.g. the prompt file's hash, never its API key; eval's without the bootstrap size)."""
BY_NAME: dict[str, Stage] = {st.name: st for st in STAGES}
CLEARABLE: dict[str, tuple[str, ...]] = {"cache": (), **{st.folder: (st.name,) for st in STAGES if st.folder}}
"""Run folders `safer clear` deletes, with the stages whose records it forgets ("cache": the frozen-block
states, no stage)."""


def command_sections(stage: Stage) -> tuple[str, ...]:
    """Config sections a stage command exposes: its own and those of everything it needs, in config order."""
    from ..config import Config

    cfg = Config()
    seen: set[str] = set()
    todo = [(stage, (stage.over(cfg) or [Key()])[0])]  # train-rm: the clean model's needs
    while todo:
        st, key = todo.pop()
        seen.update(st.sections)
        todo += [(BY_NAME[n], resolve(BY_NAME[n], k, cfg)) for n, k in st.needs(cfg, key)]
    return tuple(s for s in cfg.__dataclass_fields__ if s in seen)
