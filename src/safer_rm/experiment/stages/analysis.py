"""Analysis stages: activations of the clean reward model, the SAE, its features and the per-pair scores."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import torch

from ...activations import ActivationCache, CacheBatches, extract_pairs
from ...attribution import decompose_margin
from ...attribution_record import margin_columns
from ...curation.score import safer_scores
from ...errors import StageError
from ...features.contexts import build_contexts, top_activations
from ...features.document import compare_selections, features_document, score_diagnostics
from ...features.judges import make_judge
from ...features.salience import compute_salience
from ...features.selection import select_features
from ...io import save_tensors, write_csv, write_json
from ...precision import use_bf16
from ...report import write_dashboard
from ...sae import SAEMeta, evaluate_sae, hookpoint_for, save_sae, train_two_stage
from ...sae.encoded import encoder
from ...sae.lens import save_sae_lens
from ...splice import reward_fidelity
from .. import artifacts as A
from ..artifacts import write_pair_scores, write_selection
from ..context import RunContext
from ..graph import CLEAN, Key
from .attribution import read_attribution
from .feature_checks import judge_probe, specific_selection
from .inputs import KEPT_CACHES
from .stage1 import general_pairs, stage1_batches


def extract(ctx: RunContext, key: Key) -> dict:
    """Activation caches of the clean reward model: `pairs` (every training pair, the position policy),
    `general` (the chat pairs' texts, all tokens, for SAE stage 1) and `heldout` (the test pairs)."""
    ac = ctx.cfg.activations
    rm = ctx.models.reward_model(CLEAN, ctx.seed0)
    layer = ctx.models.layer(rm.model)
    train = ctx.data.train_pairs(CLEAN)
    general = general_pairs(ctx)
    heldout = ctx.data.test_pairs() or train[: max(1, len(train) // 10)]
    info: dict = {}
    caches = [("pairs", train, ac.positions), ("heldout", heldout, ac.positions)]
    if ac.general_source == "cache":
        caches.insert(1, ("general", general, ac.general_positions))
    else:  # streamed by train-sae: nothing on disk (a cache left by an earlier setting goes)
        shutil.rmtree(ctx.paths.activations("general"), ignore_errors=True)
        info["general"] = {"source": "stream", "pairs": len(general), "policy": ac.general_positions}
    for which, pairs, policy in caches:
        index = extract_pairs(
            rm.scorer.replace(batch_size=ac.batch_size, bf16=use_bf16(ac.bf16)),
            pairs,
            layer,
            policy,
            ctx.paths.activations(which),
            min_gap=ac.min_gap,
            standardize_vectors=ac.standardize,
            shard_vectors=ac.shard_vectors,
            dtype=ac.dtype,
            desc=f"extracting {which}",
        )
        info[which] = {
            "vectors": index["vectors"],
            "pairs": len(pairs),
            "tokens": index["tokens"],
            "policy": policy,
        }
    return {"layer": layer, **info}


def fit_sae(ctx: RunContext, key: Key) -> dict:
    """Two-stage SAE (general text, then the safety pairs), its metrics on held-out vectors and its reward
    fidelity when spliced into the clean RM."""
    sc = ctx.cfg.sae
    layer = ctx.run.info("extract")["layer"]
    pairs, heldout = (ActivationCache(ctx.paths.activations(w)) for w in KEPT_CACHES)
    rm = ctx.models.reward_model(CLEAN, ctx.seed0)
    if sc.path:
        sae, result = ctx.models.load_sae(sc.path)[0], None
    else:
        result = train_two_stage(
            stage1_batches(ctx, rm, layer),
            CacheBatches(pairs, sc.batch_size, seed=sc.seed + 1),
            sc,
            device=ctx.device,
        )
        sae = result.sae
    held = evaluate_sae(sae, heldout.batches(sc.batch_size))
    train_metrics = evaluate_sae(sae, pairs.batches(sc.batch_size))
    fidelity = reward_fidelity(
        rm.scorer,
        ctx.data.test_pairs() + ctx.data.rewardbench(),
        sae,
        layer,
        standardized=ctx.cfg.activations.standardize,
    )
    metrics = {
        "layer": layer,
        "d_in": sae.d_in,
        "num_latents": sae.num_latents,
        "k": sae.k,
        "fvu": held.fvu,
        "nmse": held.nmse,
        "l0": held.l0,
        "heldout_dead_fraction": held.dead_fraction,
        "dead_fraction": train_metrics.dead_fraction,
        "train_fvu": train_metrics.fvu,
        "heldout_vectors": held.vectors,
        "train_vectors": train_metrics.vectors,
        "splice_accuracy": fidelity["splice_accuracy"],
        "clean_accuracy": fidelity["clean_accuracy"],
        "mean_abs_margin_change": fidelity["mean_abs_margin_change"],
        "fidelity_pairs": fidelity["pairs"],
        "training": result.summary() if result else {"loaded_from": sc.path},
    }
    if ctx.main:
        meta = SAEMeta(
            layer=layer,
            position_policy=ctx.cfg.activations.positions,
            standardised=ctx.cfg.activations.standardize,
            training=metrics["training"],
        )
        save_sae(sae, ctx.paths.sae(), hookpoint_for(layer), meta)
        # the same SAE in SAE Lens's layout (`sae_lens.SAE.load_from_disk`), beside sparsify's
        save_sae_lens(
            sae, ctx.paths.sae() / "sae-lens", meta, model_name=ctx.models.model_source(CLEAN, ctx.seed0)
        )
        write_json(ctx.paths.sae() / "metrics.json", metrics)
    return {k: v for k, v in metrics.items() if k != "training"}


def features(ctx: RunContext, key: Key) -> dict:
    """Salience of every latent, contexts of the top ones, the judge's verdicts, the selection, and the
    feature dashboard."""
    fc, jc = ctx.cfg.features, ctx.cfg.judge
    sae, layer = ctx.models.load_sae()
    cache = ActivationCache(ctx.paths.activations("pairs"))
    encode = encoder(sae)
    sal = compute_salience(cache, encode, sae.num_latents, fc.normalize, fc.batch_size)
    att = read_attribution(ctx)
    ranked = att.margin_effect() if fc.salience == "attribution" else sal.salience
    order = np.lexsort((np.arange(len(ranked)), -np.abs(ranked)))
    examined = [int(i) for i in order[: fc.examine]]
    values, meta, counts = top_activations(cache, encode, examined, fc.top_m, fc.batch_size)
    tok = ctx.models.tokenizer(CLEAN, ctx.seed0)
    items, uninterpretable = build_contexts(cache, tok, examined, values, meta, counts, fc, ranked)
    judge = make_judge(jc, cache_dir=ctx.paths.judgements())
    to_judge = [it for it in items if it.latent not in uninterpretable]
    judgements = {j.latent: j for j in judge.judge(to_judge)}
    use_judge = jc.kind != "none"
    usable = [j for j in judgements.values() if j.score is not None]
    if use_judge and to_judge and not usable:
        bad = next(iter(judgements.values()))
        raise StageError(
            f"judge {jc.kind} ({judge.model}): no usable verdict for any of "
            f"{len(to_judge)} latents; latent {bad.latent}: {bad.status}: {bad.raw[:120]!r}"
        )
    top_n = len(examined) if fc.specific else fc.top_n  # with `specific`, the filter cuts to top_n
    selection = select_features(
        ranked, examined, judgements, fc.threshold, top_n, uninterpretable, use_judge=use_judge
    )
    # the comparison without the judge: the top N by the ranking alone (no specificity test either)
    by_salience = select_features(
        ranked, examined, None, fc.threshold, fc.top_n, uninterpretable, use_judge=False
    )
    specificity = None
    if fc.specific:
        selection, specificity = specific_selection(ctx, sae, layer, selection, ranked)
    doc = features_document(
        sal,
        items,
        judgements,
        selection,
        uninterpretable,
        jc,
        layer,
        fc.normalize,
        ranking=fc.salience,
        ranked=ranked,
        attribution=att.latent_table() if att is not None else None,
    )
    doc["compare_without_judge"] = compare_selections(selection, by_salience)
    if specificity is not None:
        doc["specificity"] = specificity
        for rec in doc["latents"]:
            if str(rec["latent"]) in specificity["tested"]:
                rec["specificity"] = specificity["tested"][str(rec["latent"])]
    probe = judge_probe(ctx, judge)
    if probe:
        doc["judge_probe"] = probe
    write_csv(ctx.paths.features() / "salience.csv", sal.table())  # outputs only once all went well
    write_selection(ctx.run.file(A.SELECTION), selection)
    write_json(ctx.run.file(A.FEATURES), doc)
    write_dashboard(doc, ctx.run.file(A.REPORT_DASHBOARD))
    return {
        "judge": jc.kind,
        "ranking": fc.salience,
        "specific": fc.specific,
        "specificity_tested": len(specificity["tested"]) if specificity else None,
        "judge_auroc_probe": probe.get("auroc") if probe else None,
        "examined": len(examined),
        "uninterpretable": len(uninterpretable),
        "judge_statuses": dict(Counter(j.status for j in judgements.values())),
        "n_selected_safe": len(selection.safe),
        "n_selected_unsafe": len(selection.unsafe),
        "compare_without_judge": doc["compare_without_judge"],
    }


def score(ctx: RunContext, key: Key) -> dict | None:
    """SAFER score of every training pair (with per-feature contributions) and the clean RM's margin."""
    train = ctx.data.train_pairs(CLEAN)
    # reward margins: sharded over the ranks and gathered; the SAE scores and the files: rank 0 alone
    margin = ctx.models.margins(CLEAN, ctx.seed0, train, "reward margins")
    if not ctx.main:
        return None
    sae, _layer = ctx.models.load_sae()
    sel = ctx.paths.selection()
    scores = safer_scores(
        ActivationCache(ctx.paths.activations("pairs")),
        encoder(sae),
        sel.safe,
        sel.unsafe,
        ctx.cfg.features.batch_size,
    )
    if [p.id for p in train] != scores.pair_ids:
        raise StageError("activation cache and training pairs disagree; rerun `safer extract`")
    att = read_attribution(ctx)
    top = ctx.cfg.attribution.top
    selected = att.margin_matrix(sel.latents).sum(axis=1) if att is not None else None
    rows = []
    for i, p in enumerate(train):
        parts = decompose_margin(att, i, top) if att is not None else None
        rows.append(
            {
                "id": p.id,
                "source": p.source,
                "kind": p.kind,
                "safer_score": float(scores.score[i]),
                "a_chosen": float(scores.a_chosen[i]),
                "a_rejected": float(scores.a_rejected[i]),
                "positions_chosen": int(scores.positions[i, 0]),
                "positions_rejected": int(scores.positions[i, 1]),
                "reward_margin": float(margin[i]),
                "top_features": " ".join(f"{lat}:{val:+.3f}" for lat, val in scores.top_features(i, 3)),
                **(margin_columns(parts, selected[i]) if parts is not None else {}),
            }
        )
    write_pair_scores(ctx.run.file(A.SCORES), rows)
    save_tensors(
        ctx.run.file(A.CONTRIBUTIONS),
        {
            "contributions": torch.from_numpy(scores.contributions.astype(np.float32)),
            "latents": torch.tensor(scores.latents, dtype=torch.int64),
            "signs": torch.tensor(scores.signs, dtype=torch.int64),
        },
    )
    return score_diagnostics(train, scores.score, margin)
