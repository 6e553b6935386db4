from __future__ import annotations

import numpy as np
import pytest
import torch

from safer_rm.data import PreferencePair
from safer_rm.data.records import user_prompt
from safer_rm.models import Renderer, load_reward_model, load_tokenizer
from safer_rm.reward import RMConfig, reward_pairs, section_scores, subset_accuracy, train_reward_model
from safer_rm.reward.evaluate import grouped_accuracy
from safer_rm.reward.scoring import Scorer
from safer_rm.reward.train import freeze_lower

from helpers import pairs_from, separable_rows


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_tiny_reward_models_learn_separable_pairs(fixture, request, tmp_path):
    path = request.getfixturevalue(fixture)
    tok = load_tokenizer(str(path))
    model = load_reward_model(str(path), tok)
    renderer = Renderer(tok, 64)
    train, test = pairs_from(separable_rows(64, seed=1)), pairs_from(separable_rows(32, seed=2))
    before = reward_pairs(Scorer(model, renderer, progress=False), test)
    loss_before = float(-torch.nn.functional.logsigmoid(torch.tensor(before.margin)).mean())
    cfg = RMConfig(
        lr=3e-3, epochs=4, batch_size=8, grad_accum=1, warmup_ratio=0.0, bf16="false", logging_steps=4
    )
    info = train_reward_model(model, tok, renderer, train, cfg, tmp_path / "rm")
    after = reward_pairs(Scorer(model, renderer, progress=False), test)
    loss_after = float(-torch.nn.functional.logsigmoid(torch.tensor(after.margin)).mean())
    assert loss_after < loss_before - 0.2, (loss_before, loss_after)
    assert after.correct.mean() > 0.9
    losses = [row["loss"] for row in info["history"] if "loss" in row]
    assert info["steps"] == 32 and len(losses) == 8 and losses[0] > losses[-1]
    # saved as safetensors with tokenizer and render settings; reloads to the same rewards
    assert (tmp_path / "rm" / "model.safetensors").is_file() and (
        tmp_path / "rm" / "safer_render.json"
    ).is_file()
    assert not list((tmp_path / "rm").glob("*.bin"))
    again = load_reward_model(str(tmp_path / "rm"), tok)
    np.testing.assert_allclose(
        reward_pairs(Scorer(again, renderer, progress=False), test).chosen, after.chosen, atol=1e-5
    )


def test_freeze_lower_layers(tiny_llama):
    tok = load_tokenizer(str(tiny_llama))
    model = load_reward_model(str(tiny_llama), tok)
    total = sum(p.numel() for p in model.parameters())
    trainable = freeze_lower(model, 1)
    assert 0 < trainable < total
    assert not model.model.embed_tokens.weight.requires_grad
    assert not any(p.requires_grad for p in model.model.layers[0].parameters())
    assert all(p.requires_grad for p in model.model.layers[1].parameters())
    assert model.score.weight.requires_grad


def test_section_math_matches_hand_computation():
    subsets = (
        ["alpacaeval-easy"] * 4 + ["mt-bench-med"] * 2 + ["xstest-should-refuse"] * 3 + ["donotanswer"] * 1
    )
    correct = np.array([1, 1, 1, 0, 0, 1, 1, 0, 0, 1], dtype=bool)
    per = subset_accuracy(subsets, correct)
    assert per["alpacaeval-easy"] == {"accuracy": 0.75, "n": 4}
    s = section_scores(per)
    assert s["Chat"] == pytest.approx((0.75 * 4 + 0.5 * 2) / 6)
    assert s["Safety"] == pytest.approx((1 / 3 * 3 + 1.0 * 1) / 4)
    assert "Chat Hard" not in s and "Reasoning" not in s
    assert s["overall"] == pytest.approx((s["Chat"] + s["Safety"]) / 2)


def test_tie_counts_as_wrong(tiny_bert):
    tok = load_tokenizer(str(tiny_bert))
    model = load_reward_model(str(tiny_bert), tok)
    same = [PreferencePair("0", user_prompt("p"), "identical words", "identical words")]
    scores = reward_pairs(Scorer(model, Renderer(tok, 32), progress=False), same)
    assert scores.chosen[0] == scores.rejected[0] and not scores.correct[0]


def test_heldout_split_by_kind():
    pairs = [
        PreferencePair(str(i), [], "a", "b", src, kind)
        for i, (src, kind) in enumerate(
            [("pku", "safety"), ("pku", "safety"), ("hh", "safety"), ("alpaca", "chat")]
        )
    ]
    g = grouped_accuracy(pairs, np.array([1, 0, 1, 1], dtype=bool))
    assert g["safety"] == pytest.approx(2 / 3) and g["chat"] == 1.0
    assert g["by_source"]["pku"] == {"accuracy": 0.5, "n": 2}


@pytest.mark.parametrize("ratio, steps", [(0.03, 300), (0.25, 16), (0.0, 40)])
def test_warmup_is_the_configured_share_of_the_steps(ratio, steps, tmp_path):
    """`rm.warmup_ratio` reaches the scheduler as a share on the installed transformers (4 reads a `warmup_steps`
    below 1 as no warm-up, 5 has no `warmup_ratio`)."""
    import math

    from safer_rm.reward.arguments import training_arguments

    cfg = RMConfig(warmup_ratio=ratio, bf16="false")
    args = training_arguments(
        cfg, tmp_path, bf16=False, per_epoch=steps, has_eval=False, quiet=True, use_cpu=True
    )
    assert args.get_warmup_steps(steps) == math.ceil(ratio * steps)


def test_training_warms_up_over_the_configured_steps(tiny_bert, tmp_path):
    """End to end through the Trainer: 16 optimizer steps with warmup_ratio 0.25 and a linear schedule: the
    learning rate rises over the first 4 steps to its peak and falls after."""
    tok = load_tokenizer(str(tiny_bert))
    model = load_reward_model(str(tiny_bert), tok)
    cfg = RMConfig(
        lr=1e-3, epochs=1, batch_size=4, grad_accum=1, warmup_ratio=0.25, scheduler="linear", bf16="false",
        logging_steps=1, select_best=False,
    )  # fmt: skip
    info = train_reward_model(
        model, tok, Renderer(tok, 32), pairs_from(separable_rows(64, seed=3)), cfg, tmp_path / "rm"
    )
    lrs = {row["step"]: row["learning_rate"] for row in info["history"] if "learning_rate" in row}
    assert info["steps"] == 16 and len(lrs) == 16
    peak = max(lrs.values())
    assert peak == pytest.approx(1e-3, rel=1e-6)
    rising = [lrs[s] for s in range(1, 5)]
    assert all(a < b for a, b in zip(rising, rising[1:])) and rising[0] < peak / 2, lrs
    assert all(lrs[s] > lrs[s + 1] for s in range(5, 16)), lrs
