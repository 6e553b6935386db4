from __future__ import annotations

import numpy as np
import pytest
import torch

from safer_rm.models import Renderer, load_reward_model, load_tokenizer
from safer_rm.models.batching import pad_batch
from safer_rm.models.layers import Resume, hidden_at, stop_at
from safer_rm.models.prefix_cache import PrefixCache
from safer_rm.reward import RMConfig, reward_pairs, train_reward_model
from safer_rm.reward.scoring import Scorer

from helpers import pairs_from, separable_rows


def _batch(tok):
    renderer = Renderer(tok, 64)
    enc = [
        renderer.encode([{"role": "user", "content": r["prompt"]}], r["chosen"]) for r in separable_rows(6)
    ]
    return pad_batch([e.input_ids for e in enc], tok.pad_token_id), enc


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_stop_at_equals_hidden_states_and_skips_upper_blocks(fixture, request):
    path = request.getfixturevalue(fixture)
    tok = load_tokenizer(str(path))
    model = load_reward_model(str(path), tok).eval()
    (ids, mask), _ = _batch(tok)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        for layer in (0, 1):
            np.testing.assert_allclose(
                hidden_at(model, layer, input_ids=ids, attention_mask=mask), full[layer], atol=1e-6
            )
    calls = []
    blocks = model.model.layers if fixture == "tiny_llama" else model.bert.encoder.layer
    handle = blocks[1].register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad(), stop_at(model, 1):
        with pytest.raises(Exception, match="stopped"):
            model(input_ids=ids, attention_mask=mask)
    handle.remove()
    assert calls == []  # block 2 never ran


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_resume_from_cache_reproduces_rewards(fixture, request, tmp_path):
    path = request.getfixturevalue(fixture)
    tok = load_tokenizer(str(path))
    model = load_reward_model(str(path), tok).eval()
    (ids, mask), enc = _batch(tok)
    cache = PrefixCache(1, "base", tmp_path / "cache")
    assert cache.fill(model, [e.input_ids for e in enc], tok.pad_token_id, progress=False) == 6
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        with Resume(model, 1) as resume, resume.feed(cache.batch([e.input_ids for e in enc], ids.shape[1])):
            resumed = model(input_ids=ids, attention_mask=mask).logits
    np.testing.assert_allclose(resumed, full, atol=2e-2)  # cache is bf16
    blocks = model.model.layers if fixture == "tiny_llama" else model.bert.encoder.layer
    assert not any("forward" in b.__dict__ for b in blocks)  # the pass-through is removed on exit
    # persisted and reloaded; states of other weights are not reused
    assert len(PrefixCache(1, "base", tmp_path / "cache")) == 6
    assert len(PrefixCache(1, "other-weights", tmp_path / "cache")) == 0


def test_training_over_cached_prefix_matches_training_without(tiny_llama, tmp_path):
    tok = load_tokenizer(str(tiny_llama))
    renderer = Renderer(tok, 64)
    train, test = pairs_from(separable_rows(32, seed=1)), pairs_from(separable_rows(16, seed=2))
    cfg = RMConfig(
        lr=3e-3, epochs=2, batch_size=8, grad_accum=1, warmup_ratio=0.0, bf16="false", freeze_layers=1
    )
    results = []
    for use_cache in (False, True):
        torch.manual_seed(0)
        model = load_reward_model(str(tiny_llama), tok)
        prefix = PrefixCache(1, "base", tmp_path / f"c{use_cache}") if use_cache else None
        info = train_reward_model(
            model, tok, renderer, train, cfg, tmp_path / f"rm{use_cache}", prefix=prefix
        )
        results.append((info, reward_pairs(Scorer(model, renderer, prefix=prefix, progress=False), test)))
    (plain, s_plain), (cached, s_cached) = results
    assert plain["train_loss"] == pytest.approx(cached["train_loss"], abs=0.02)
    np.testing.assert_allclose(s_cached.margin, s_plain.margin, atol=0.1)
    # the saved model is complete (frozen blocks included) and scores the same without the cache
    again = load_reward_model(str(tmp_path / "rmTrue"), tok)
    np.testing.assert_allclose(
        reward_pairs(Scorer(again, renderer, progress=False), test).margin, s_cached.margin, atol=0.1
    )


def test_the_last_block_at_the_first_position_only_gives_the_same_rewards_and_gradients(tiny_bert):
    """BERT's head reads position 0: the last block computing that row alone (keys and values from every
    position) gives the full forward's rewards on a padded batch, and the same gradients for every trained
    parameter (dropout off); a decoder, whose head reads the last token, is left alone."""
    from safer_rm.models.head_position import first_position_only

    tok = load_tokenizer(str(tiny_bert))
    model = load_reward_model(str(tiny_bert), tok)
    (ids, mask), _ = _batch(tok)
    assert bool((mask == 0).any())  # padded rows, so the mask's query row matters
    model.eval()  # dropout off, gradients still flow
    rewards, grads = [], []
    for shortcut in (False, True):
        model.zero_grad()
        with first_position_only(model, enabled=shortcut) as on:
            assert on == shortcut
            r = model(input_ids=ids, attention_mask=mask).logits[:, 0]
        r.square().sum().backward()
        rewards.append(r.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    np.testing.assert_allclose(rewards[1], rewards[0], rtol=1e-5, atol=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        np.testing.assert_allclose(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, err_msg=name)
    blocks = model.bert.encoder.layer
    assert "forward" not in blocks[-1].__dict__  # restored on exit


def test_the_first_position_shortcut_leaves_decoders_alone(tiny_llama):
    from safer_rm.models.head_position import first_position_only, reads_first_position

    tok = load_tokenizer(str(tiny_llama))
    model = load_reward_model(str(tiny_llama), tok)
    assert not reads_first_position(model)
    with first_position_only(model) as on:
        assert on is False
