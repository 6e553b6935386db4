from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from safer_rm.causal import causal_test
from safer_rm.reward import reward_pairs
from safer_rm.reward.scoring import Scorer
from safer_rm.splice import SAESplice, reward_fidelity, spliced_margins

from helpers import eval_rm, pairs_from, sae_on_layer, separable_rows


def _setup(tiny_llama, tmp_path):
    _tok, model, renderer = eval_rm(tiny_llama)
    pairs = pairs_from(separable_rows(24))
    sae = sae_on_layer(model, renderer, pairs, tmp_path / "acts", num_latents=128, steps=150)
    return model, renderer, pairs, sae


def test_splice_with_error_kept_and_nothing_ablated_reproduces_rewards(tiny_llama, tmp_path):
    model, renderer, pairs, sae = _setup(tiny_llama, tmp_path)
    clean = reward_pairs(Scorer(model, renderer, progress=False), pairs)
    kept = spliced_margins(Scorer(model, renderer), pairs, sae, 1, keep_error=True)
    np.testing.assert_allclose(kept, clean.margin, atol=1e-4)
    # the hook is gone afterwards
    np.testing.assert_allclose(
        reward_pairs(Scorer(model, renderer, progress=False), pairs).margin, clean.margin
    )
    # without the error term the reconstruction replaces the layer: close, but not identical
    fid = reward_fidelity(Scorer(model, renderer), pairs, sae, 1, clean_margin=clean.margin)
    assert fid["mean_abs_margin_change"] > 0 and fid["clean_accuracy"] == float((clean.margin > 0).mean())


def test_ablating_latents_changes_rewards_only_through_them(tiny_llama, tmp_path):
    model, renderer, pairs, sae = _setup(tiny_llama, tmp_path)
    ids = torch.tensor([renderer.encode(pairs[0].prompt, pairs[0].chosen).input_ids])
    with torch.no_grad(), SAESplice(model, sae, 1, keep_error=True):
        base = model(input_ids=ids).logits
    with torch.no_grad():
        h = model(input_ids=ids, output_hidden_states=True).hidden_states[1][0]
    from safer_rm.activations import standardize

    x, _, _ = standardize(h)
    active = sae.encode(x).indices.unique().tolist()
    inactive = [i for i in range(sae.num_latents) if i not in active][:5]
    with torch.no_grad(), SAESplice(model, sae, 1, keep_error=True, ablate=inactive):
        same = model(input_ids=ids).logits
    with torch.no_grad(), SAESplice(model, sae, 1, keep_error=True, ablate=active):
        changed = model(input_ids=ids).logits
    torch.testing.assert_close(same, base)
    assert not torch.allclose(changed, base)
    res = causal_test(
        Scorer(model, renderer), sae, 1, active[:4], {"safety": pairs[:8], "chat": pairs[8:16]}, draws=2
    )
    assert res["n_latents"] == 4 and res["draws"] == 2
    zero = res["scales"][0]
    assert zero["scale"] == 0.0 and set(zero["groups"]) == {"safety", "chat"}
    assert all(set(c) >= {"margin_drop", "random", "versus_random"} for c in zero["groups"].values())


# ---- scaling instead of zeroing -----------------------------------------------------------------------------
def _block_output(model, ids, **splice) -> torch.Tensor:
    """Block 1's output (what the splice's hook returns when `splice` is given), for one sequence."""
    from safer_rm.models.layers import transformer_blocks

    seen = []

    def capture(_module, _args, output):
        seen.append(output[0] if isinstance(output, tuple) else output)

    def run():
        handle = transformer_blocks(model)[0].register_forward_hook(capture)  # after the splice's hook
        try:
            model(input_ids=ids)
        finally:
            handle.remove()

    with torch.no_grad():
        if splice:
            with SAESplice(model, splice.pop("sae"), 1, keep_error=True, **splice):
                run()
        else:
            run()
    return seen[0][0].float()


def test_scaling_latents_adds_their_decoded_contribution(tiny_llama, tmp_path):
    from safer_rm.activations import standardize

    model, renderer, pairs, sae = _setup(tiny_llama, tmp_path)
    ids = torch.tensor([renderer.encode(pairs[0].prompt, pairs[0].chosen).input_ids])
    h = _block_output(model, ids)
    x, _, std = standardize(h)
    acts, indices = sae.encode(x)
    strength = torch.zeros(sae.num_latents).index_add_(0, indices.flatten(), acts.detach().flatten())
    active = strength.argsort(descending=True)[: int((strength > 0).sum())].tolist()  # strongest first

    def contribution(latents):  # the decoded contribution of `latents`, de-standardised
        keep = torch.isin(indices, torch.tensor(latents))
        part = sae.decode(acts.masked_fill(~keep, 0), indices) - sae.decode(torch.zeros_like(acts), indices)
        return part.float() * (std + 1e-6).unsqueeze(-1)

    one, some = active[:1], active[:3]
    assert contribution(one).abs().max() > 1e-3  # well above the tolerance below
    for scale in (2.0, 0.0, -1.0, 1.0):
        for latents in (one, some):
            got = _block_output(model, ids, sae=sae, ablate=latents, scale=scale)
            want = h + (scale - 1.0) * contribution(latents)
            torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    # scale 1 is no edit at all, scale 0 is the default (zeroing), as the margins show too
    torch.testing.assert_close(
        _block_output(model, ids, sae=sae, ablate=some, scale=1.0), _block_output(model, ids, sae=sae)
    )
    torch.testing.assert_close(
        _block_output(model, ids, sae=sae, ablate=some),
        _block_output(model, ids, sae=sae, ablate=some, scale=0.0),
    )
    assert not torch.allclose(_block_output(model, ids, sae=sae, ablate=one, scale=2.0), h, atol=1e-4)
    kw = {"keep_error": True, "ablate": active}
    base = spliced_margins(Scorer(model, renderer), pairs, sae, 1, keep_error=True)
    np.testing.assert_array_equal(
        spliced_margins(Scorer(model, renderer), pairs, sae, 1, scale=1.0, **kw), base
    )
    np.testing.assert_array_equal(
        spliced_margins(Scorer(model, renderer), pairs, sae, 1, **kw),
        spliced_margins(Scorer(model, renderer), pairs, sae, 1, scale=0.0, **kw),
    )


# ---- the causal test on benchmark sections and held-out sets ------------------------------------------------
def _as(pairs, kind: str, subsets=(), source: str = "toy"):
    """Copies of `pairs` of `kind` and `source`, cycling through RewardBench `subsets` when given."""
    import dataclasses

    return [
        dataclasses.replace(
            p,
            id=f"{kind}-{source}-{i}",
            kind=kind,
            source=source,
            meta={"subset": subsets[i % len(subsets)]} if subsets else {},
        )
        for i, p in enumerate(pairs)
    ]


def test_causal_test_reports_every_group_and_scale_with_intervals(tiny_llama, tmp_path):
    from safer_rm.reward.evaluate import section_scores, subset_accuracy

    model, renderer, pairs, sae = _setup(tiny_llama, tmp_path)
    groups = {
        "Safety": _as(pairs[:6], "chat", ["refusals-dangerous", "donotanswer"], "rewardbench"),
        "Chat": _as(pairs[6:11], "chat", ["alpacaeval-easy"], "rewardbench"),
        "heldout safety": _as(pairs[11:18], "safety"),
        "heldout chat": _as(pairs[18:22], "chat"),
    }
    selected = list(range(0, sae.num_latents, 9))
    res = causal_test(
        Scorer(model, renderer), sae, 1, selected, groups, draws=2, scales=[0.0, 2.0], n_boot=200
    )
    assert list(res["groups"]) == list(groups) and [c["scale"] for c in res["scales"]] == [0.0, 2.0]
    assert res["n_latents"] == len(selected) and len(res["random_sets"]) == 2
    assert all(len(r) == len(selected) and not set(r) & set(selected) for r in res["random_sets"])

    def within(iv, n, key="value"):
        assert iv["low"] <= iv[key] <= iv["high"] and iv["n"] == n, iv

    base = {
        g: spliced_margins(Scorer(model, renderer), p, sae, 1, keep_error=True) for g, p in groups.items()
    }
    for name, info in res["groups"].items():
        n = len(groups[name])
        assert info["n"] == n
        within(info["base"]["accuracy"], n)
    safety_subsets = [p.meta["subset"] for p in groups["Safety"]]
    for cond in res["scales"]:
        edited = {}
        for name, c in cond["groups"].items():
            n = len(groups[name])
            within(c["accuracy"], n)
            within(c["margin_drop"], n)
            within(c["accuracy_diff"], n, "diff")
            within(c["versus_random"], n, "diff")
            assert c["random"]["margin_drop_sd"] >= 0 and len(c["random"]["draw_margin_drops"]) == 2
            edited[name] = spliced_margins(
                Scorer(model, renderer),
                groups[name],
                sae,
                1,
                keep_error=True,
                ablate=selected,
                scale=cond["scale"],
            )
            np.testing.assert_allclose(
                c["margin_drop"]["value"], (base[name] - edited[name]).mean(), atol=1e-5
            )
            want = (edited[name] > 0).mean() - (base[name] > 0).mean()
            assert abs(c["accuracy_diff"]["diff"] - want) < 1e-6
        # RewardBench sections: the evaluation's section score on the sample, equal to the per-pair accuracy
        section = section_scores(subset_accuracy(safety_subsets, edited["Safety"] > 0))["Safety"]
        assert abs(cond["groups"]["Safety"]["accuracy"]["value"] - section) < 1e-6
        change = {g: np.abs(edited[g] - base[g]) for g in groups}
        safety = np.concatenate([change["Safety"], change["heldout safety"]]).mean()
        chat = np.concatenate([change["Chat"], change["heldout chat"]]).mean()
        assert cond["specificity"] == pytest.approx(safety / chat, rel=1e-3)
        assert cond["random_specificity"] is None or cond["random_specificity"] >= 0
    # one layout: per scale and group (no flat keys beside it)
    assert set(res) == {
        "n_latents",
        "draws",
        "n_boot",
        "level",
        "selected",
        "random_sets",
        "groups",
        "scales",
    }
    json.dumps(res, allow_nan=False)  # results.json is plain JSON
    # one side missing: no specificity ratio
    only = causal_test(
        Scorer(model, renderer),
        sae,
        1,
        selected,
        {"heldout safety": groups["heldout safety"]},
        draws=1,
        n_boot=100,
    )
    assert list(only["scales"][0]["groups"]) == ["heldout safety"]
    assert only["scales"][0]["specificity"] is None


def _rewardbench_like() -> list:
    rows = separable_rows(80, seed=3)
    pairs = pairs_from(rows)
    sizes = {
        "alpacaeval-easy": 30,
        "mt-bench-easy": 4,
        "llmbar-natural": 12,
        "refusals-dangerous": 20,
        "donotanswer": 3,
        "xstest-should-respond": 1,
    }
    out, start = [], 0
    for subset, n in sizes.items():
        out += _as(pairs[start : start + n], "chat", [subset], "rewardbench")
        start += n
    order = np.random.default_rng(0).permutation(len(out))  # subsets interleaved, as a real file may be
    return [out[i] for i in order]


def test_causal_groups_are_sections_and_heldout_sets_sampled_by_subset():
    from types import SimpleNamespace

    from safer_rm.causal import evaluation_groups
    from safer_rm.experiment.stages.sweep import causal_groups
    from safer_rm.reward.evaluate import SECTIONS

    rb = _rewardbench_like()
    pool = pairs_from(separable_rows(40, seed=4))
    heldout = _as(pool[:14], "safety", source="pku") + _as(pool[14:20], "safety", source="hh")
    heldout += _as(pool[20:32], "chat", source="alpaca")
    groups = evaluation_groups(rb, heldout, max_pairs=10, seed=0)
    assert list(groups) == ["Chat", "Chat Hard", "Safety", "heldout safety", "heldout chat"]  # no Reasoning
    assert all(len(v) == 10 for v in groups.values())
    for section in ("Chat", "Chat Hard", "Safety"):
        full = {p.meta["subset"] for p in rb if p.meta["subset"] in SECTIONS[section]}
        assert {p.meta["subset"] for p in groups[section]} == full  # every subset keeps a share
        assert all(p in rb for p in groups[section])
        positions = [rb.index(p) for p in groups[section]]
        assert positions == sorted(positions)  # in the set's order
    chat = [p.meta["subset"] for p in groups["Chat"]]
    assert (chat.count("alpacaeval-easy"), chat.count("mt-bench-easy")) == (9, 1)  # 30:4 of 10
    safety = [p.meta["subset"] for p in groups["Safety"]]
    assert safety.count("refusals-dangerous") == 8 and safety.count("xstest-should-respond") == 1
    assert {p.source for p in groups["heldout safety"]} == {"pku", "hh"}
    assert [p.kind for p in groups["heldout chat"]] == ["chat"] * 10
    # deterministic, seeded, and a group at most max_pairs large is kept whole
    again = evaluation_groups(rb, heldout, max_pairs=10, seed=0)
    assert {k: [p.id for p in v] for k, v in again.items()} == {
        k: [p.id for p in v] for k, v in groups.items()
    }
    other = evaluation_groups(rb, heldout, max_pairs=10, seed=1)
    assert any([p.id for p in other[k]] != [p.id for p in groups[k]] for k in groups)
    whole = evaluation_groups(rb, heldout, max_pairs=None)
    assert len(whole["Chat"]) == 34 and len(whole["heldout chat"]) == 12
    assert len(evaluation_groups(rb, heldout, max_pairs=2)["Safety"]) == 2  # fewer pairs than subsets
    # no RewardBench: the held-out groups alone; the stage reads the run's sets
    assert list(evaluation_groups([], heldout, 10)) == ["heldout safety", "heldout chat"]
    ctx = SimpleNamespace(
        data=SimpleNamespace(rewardbench=lambda: rb, test_pairs=lambda: heldout),
        cfg=SimpleNamespace(eval=SimpleNamespace(rewardbench2=None)),
    )
    staged = causal_groups(ctx, 10, 0)
    assert {k: [p.id for p in v] for k, v in staged.items()} == {
        k: [p.id for p in v] for k, v in groups.items()
    }


def test_the_causal_test_encodes_each_batch_once_with_the_same_results(tiny_llama, tmp_path):
    """Every condition splices into the same batches: the encoding memo serves the SAE codes of identical inputs
    after the first pass (7 conditions here: base, 2 scales x (selection + 2 draws)), and the results equal a
    run that encodes every pass afresh; a different input is a miss, never a stale code."""
    from safer_rm.splice import EncodingMemo

    model, renderer, pairs, sae = _setup(tiny_llama, tmp_path)
    groups = {"heldout safety": _as(pairs[:10], "safety"), "heldout chat": _as(pairs[10:20], "chat")}
    calls = []
    encode = sae.encode
    sae.encode = lambda x: calls.append(x.shape[0]) or encode(x)
    try:
        run = dict(draws=2, scales=[0.0, 2.0], n_boot=200)
        scorer = Scorer(model, renderer, batch_size=16)
        fresh = causal_test(scorer, sae, 1, [0, 9, 18], groups, memo=None, **run)
        per_pass = len(calls) // 7
        assert len(calls) == 7 * per_pass and per_pass >= 2  # several batches per pass, no memo
        calls.clear()
        memoised = causal_test(scorer, sae, 1, [0, 9, 18], groups, **run)
        assert len(calls) == per_pass  # each batch encoded once
    finally:
        sae.encode = encode
    assert json.dumps(memoised, sort_keys=True) == json.dumps(fresh, sort_keys=True)
    memo = EncodingMemo(max_vectors=10)
    x = torch.randn(6, sae.d_in)
    first = memo.encode(sae, x)
    assert memo.encode(sae, x.clone()) is first and memo.hits == 1
    memo.encode(sae, x + 1e-3)
    memo.encode(sae, torch.randn(6, sae.d_in))  # over max_vectors: the oldest goes
    assert memo.misses == 3 and len(memo.entries) == 1
