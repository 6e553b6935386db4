"""Reward attribution of SAE latents (safer_rm.attribution): exact where the reward is linear in the spliced
layer, a faithful decomposition of every reward and margin, independent of batching and padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from safer_rm.attribution import attribute_pairs, check_against_ablation, decompose_margin
from safer_rm.reward import reward_pairs
from safer_rm.reward.scoring import Scorer
from safer_rm.sae import SAEConfig, TopKSAE
from safer_rm.splice import spliced_margins

from helpers import eval_rm, pairs_from, separable_rows


def _sae(d_in: int, latents: int = 64, k: int = 6) -> TopKSAE:
    torch.manual_seed(1)
    return TopKSAE.create(d_in, SAEConfig(num_latents=latents, k=k, batch_size=64, dead_after=1000))


def _linear_rm(tiny_llama):
    """The tiny Llama without its final norm: the score head reads the last block's output directly, so the
    reward is linear in the SAE layer's states (layer 2 = the last block) and first order is exact."""
    _tok, model, renderer = eval_rm(tiny_llama)
    model.model.norm = torch.nn.Identity()
    return model, renderer


def test_attribution_equals_exact_ablation_for_a_linear_head(tiny_llama):
    model, renderer = _linear_rm(tiny_llama)
    pairs = pairs_from(separable_rows(10))
    sae = _sae(model.config.hidden_size)
    att = attribute_pairs(Scorer(model, renderer, batch_size=8, progress=False), pairs, sae, 2)
    clean = reward_pairs(Scorer(model, renderer, progress=False), pairs)
    np.testing.assert_allclose(att.reward[:, 0], clean.chosen, atol=1e-4)
    np.testing.assert_allclose(att.reward[:, 1], clean.rejected, atol=1e-4)
    # contributions plus base equal the reward: nothing is left to the non-linear term
    np.testing.assert_allclose(att.nonlinear, 0.0, atol=1e-4)
    assert np.abs(att.total).max() > 1e-3  # the latents do carry reward
    # zeroing one latent, or a set, changes every margin by exactly its (summed) attribution
    effect = np.abs(att.margin_effect())
    top = [int(i) for i in np.argsort(-effect)[:4]]
    base = spliced_margins(Scorer(model, renderer), pairs, sae, 2, keep_error=True)
    for latent in top[:2]:
        ablated = spliced_margins(Scorer(model, renderer), pairs, sae, 2, keep_error=True, ablate=[latent])
        np.testing.assert_allclose(base - ablated, att.margin_matrix([latent])[:, 0], atol=1e-4)
    ablated = spliced_margins(Scorer(model, renderer), pairs, sae, 2, keep_error=True, ablate=top)
    np.testing.assert_allclose(base - ablated, att.margin_matrix(top).sum(axis=1), atol=1e-4)
    check = check_against_ablation(Scorer(model, renderer), pairs[:6], att, sae, 2, top)
    assert check["points"] == 6 * 4 and check["pearson"] > 0.9999
    assert check["slope"] == pytest.approx(1.0, abs=1e-3) and check["mean_abs_gap"] < 1e-4


def test_decomposition_sums_to_the_margin_and_first_order_tracks_ablation(tiny_llama):
    """With the final norm in place the reward is not linear in the layer: the identity still holds (the
    non-linear term takes the rest) and exact ablation effects still follow the attribution closely."""
    _tok, model, renderer = eval_rm(tiny_llama)
    pairs = pairs_from(separable_rows(10))
    sae = _sae(model.config.hidden_size)
    att = attribute_pairs(Scorer(model, renderer, batch_size=8, progress=False), pairs, sae, 1)
    np.testing.assert_allclose(att.reward, att.base + att.total + att.nonlinear, atol=1e-9)
    assert np.abs(att.nonlinear).max() > 0  # not exact here, so the test above is not vacuous
    for i in range(len(pairs)):
        d = decompose_margin(att, i, top=3)
        assert len(d["top"]) == 3
        parts = d["top_sum"] + d["other_latents"] + d["base"] + d["nonlinear"]
        assert parts == pytest.approx(d["margin"], abs=1e-6)
        assert abs(d["top"][0][1]) >= abs(d["top"][-1][1])
    top = [int(i) for i in np.argsort(-np.abs(att.margin_effect()))[:5]]
    check = check_against_ablation(Scorer(model, renderer), pairs, att, sae, 1, top)
    assert check["pearson"] > 0.9


def test_attribution_does_not_depend_on_batching_or_padding(tiny_bert):
    """An encoder (attention over every position, pads masked): one text alone or in a padded batch of
    texts of other lengths gets the same per-latent attribution; kinds split the margin effects."""
    _tok, model, renderer = eval_rm(tiny_bert)
    rows = separable_rows(8)
    rows[3]["chosen"] += " And a much longer tail of words to pad the others in its batch."
    pairs = pairs_from(rows)
    for p in pairs[4:]:
        p.kind = "chat"
    sae = _sae(model.config.hidden_size)
    one = attribute_pairs(Scorer(model, renderer, batch_size=2, progress=False), pairs, sae, 1)
    many = attribute_pairs(Scorer(model, renderer, batch_size=16, progress=False), pairs, sae, 1)
    np.testing.assert_allclose(one.reward, many.reward, atol=1e-5)
    lat = list(range(sae.num_latents))
    np.testing.assert_allclose(one.margin_matrix(lat), many.margin_matrix(lat), atol=1e-5)
    table = many.latent_table()
    full = many.margin_effect()
    np.testing.assert_allclose(
        table["margin_effect_safety"] * 4 + table["margin_effect_chat"] * 4, full * 8, atol=1e-9
    )
    np.testing.assert_allclose(table["effect_chosen"] - table["effect_rejected"], full, atol=1e-9)


def test_attribution_salience_specific_selection_and_margin_columns_in_a_run(tmp_path, tiny_llama):
    """The stages on a tiny run: ranking by attribution, the specificity filter measured with the splice on
    held-out pairs, the margin decomposition in scores/pairs.csv and the dashboard's reward effects."""
    import csv
    import json

    from safetensors.torch import load_file

    from safer_rm.cli import main
    from safer_rm.data import read_pairs
    from safer_rm.sae import load_sae

    from helpers import toy_config

    cfg = toy_config(tmp_path, tiny_llama)
    sets = ["features.salience=attribution", "features.specific=true", "features.specificity=1.2"]
    sets += ["attribution.check_pairs=12", "attribution.check_latents=4"]
    assert main(["run", cfg, "-q", "--stages", "score", *(a for s in sets for a in ("--set", s))]) == 0
    run = tmp_path / "run"
    info = json.loads((run / "attribution" / "summary.json").read_text())
    assert info["check"]["points"] == 12 * 4 and info["check"]["pearson"] > 0.5
    effect = load_file(str(run / "attribution" / "attribution.safetensors"))["margin_effect"].numpy()
    doc = json.loads((run / "features" / "features.json").read_text())
    assert doc["ranking"] == "attribution"
    spec = doc["specificity"]
    selected = doc["selection"]["safe"] + doc["selection"]["unsafe"]
    assert selected and set(selected) == set(spec["kept"])
    assert all(spec["tested"][str(i)]["ratio"] >= 1.2 for i in selected)
    assert all(effect[i] > 0 for i in doc["selection"]["safe"])
    assert all(effect[i] < 0 for i in doc["selection"]["unsafe"])
    # candidates were tested in order of |attribution|: every kept one outranks the untested ones
    ranks = {r["latent"]: r["rank"] for r in doc["latents"]}
    untested = [r["latent"] for r in doc["latents"] if "not tested" in (r.get("reason") or "")]
    assert all(ranks[i] < ranks[j] for i in selected for j in untested)
    # one tested ratio, recomputed with the splice on the same held-out sample
    from safer_rm.features.specificity import specificity_pairs

    _tok, model, renderer = eval_rm(run / "rm" / "clean" / "seed-0", max_length=48)
    sae = load_sae(run / "sae", "layers.1").sae
    safety, chat = specificity_pairs(read_pairs(run / "data" / "test.jsonl"), 200, 0)
    latent = selected[0]
    base = spliced_margins(Scorer(model, renderer), safety + chat, sae, 1, keep_error=True)
    cut = spliced_margins(Scorer(model, renderer), safety + chat, sae, 1, keep_error=True, ablate=[latent])
    change = np.abs(base - cut)
    want = change[: len(safety)].mean() / change[len(safety) :].mean()
    assert spec["tested"][str(latent)]["ratio"] == pytest.approx(want, rel=1e-4)
    # the margin, decomposed per pair: the parts add up to it, and it is the clean RM's margin
    with open(run / "scores" / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        parts = sum(
            float(r[k]) for k in ("margin_top_sum", "margin_other_latents", "margin_base", "margin_nonlinear")
        )
        assert parts == pytest.approx(float(r["attributed_margin"]), abs=1e-5)
        assert float(r["attributed_margin"]) == pytest.approx(float(r["reward_margin"]), abs=1e-4)
        assert len(r["margin_top_latents"].split()) == 3
    html = (run / "report" / "features.html").read_text()
    assert "margin effect, safety pairs" in html and "specificity (safety / chat)" in html
