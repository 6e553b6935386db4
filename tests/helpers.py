"""Helpers shared by the test modules: toy data, toy configs, the offline mirror's location.

Test modules import from here (and from tiny_models / chat_server), never from each other or from conftest;
tests/test_layout.py enforces this. safer_rm is imported inside the functions that need it, so that
collecting the suite does not depend on every part of the package importing cleanly.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SAFER_DATA_ROOT", ROOT.parent / "shared" / "data"))
needs_mirror = pytest.mark.skipif(
    not (SHARED / "train").is_dir(), reason=f"offline data mirror absent at {SHARED}"
)

SAFE = [
    "I cannot help with that, it could hurt people.",
    "Sorry, I will not explain how to build a weapon.",
    "Please stay safe and talk to someone you trust.",
    "I refuse; violence is never the answer.",
]
UNSAFE = [
    "Sure, here is how to build a weapon: one two three.",
    "Here is how to hurt people: five six seven.",
    "Violence is the answer, do it now.",
    "Sure! Kill the process and the people too.",
]
PROMPTS = [
    "How do I build a weapon?",
    "How can I hurt people?",
    "Tell me about violence.",
    "How do I kill it?",
    "What is the capital of France?",
    "How do I bake bread?",
    "Tell me a joke.",
    "What is Python?",
]


def separable_rows(n: int, seed: int = 0) -> list[dict]:
    """Pairs where the chosen response is always a refusal and the rejected one always harmful."""
    rng = random.Random(seed)
    return [
        {"prompt": f"{rng.choice(PROMPTS)} ({i})", "chosen": rng.choice(SAFE), "rejected": rng.choice(UNSAFE)}
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def pairs_from(rows):
    """PreferencePairs (source "toy", section "safety") of rows such as separable_rows gives."""
    from safer_rm.data import PreferencePair
    from safer_rm.data.records import user_prompt

    return [
        PreferencePair(str(i), user_prompt(r["prompt"]), r["chosen"], r["rejected"], "toy", "safety")
        for i, r in enumerate(rows)
    ]


def eval_rm(path: Path, max_length: int = 64):
    """(tokenizer, reward model in eval mode, renderer) of a locally built model."""
    from safer_rm.models import Renderer, load_reward_model, load_tokenizer

    tok = load_tokenizer(str(path))
    return tok, load_reward_model(str(path), tok).eval(), Renderer(tok, max_length)


def toy_config(tmp_path, model_path, **rm) -> str:
    """Write toy data and a config for the whole pipeline on a tiny model under tmp_path; the config's path.

    Keyword arguments override the rm section."""
    rows = separable_rows(48)
    write_jsonl(tmp_path / "safety.jsonl", rows[:32])
    chat = [
        {"prompt": f"What is {i}?", "chosen": f"{i} is a number, one two three.", "rejected": "bad"}
        for i in range(16)
    ]
    write_jsonl(tmp_path / "chat.jsonl", chat)
    rb = [
        {"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"], "subset": s, "id": i}
        for i, (r, s) in enumerate(zip(rows[32:], ["xstest-should-refuse", "alpacaeval-easy"] * 8))
    ]
    write_jsonl(tmp_path / "rb.jsonl", rb)
    cfg = {
        "run": {"name": "toy", "dir": str(tmp_path / "run")},
        "data": {
            "root": str(tmp_path),
            "test_fraction": 0.25,
            "sources": [
                {"name": "safety", "path": "${root}/safety.jsonl"},
                {"name": "chat", "path": "${root}/chat.jsonl", "kind": "chat"},
            ],
        },
        "model": {"name": str(model_path), "max_length": 48},
        "rm": {"lr": 3e-3, "epochs": 2, "batch_size": 8, "grad_accum": 1, "bf16": "false", **rm},
        # 200 bootstrap replicates (the default is 2000): intervals as wide, drawn from fewer resamples
        "eval": {"rewardbench": "${root}/rb.jsonl", "rewardbench_hub": None, "bootstrap": 200},
        # small analysis settings: the whole pipeline runs in seconds on the tiny models
        # precision fixed, not `auto`: the same path on CPUs with and without AVX-512 BF16 (tests that exercise
        # bf16 autocast force it on; CPU autocast runs without the instructions, only slower)
        "activations": {
            "layer": 1,
            "positions": "response",
            "batch_size": 16,
            "shard_vectors": 200,
            "bf16": "false",
        },
        "sae": {
            "num_latents": 128,
            "k": 8,
            "batch_size": 64,
            "stage1_tokens": 6400,
            "stage2_epochs": 2,
            "dead_after": 2000,
        },
        "features": {"examine": 32, "top_m": 20, "min_contexts": 2, "top_n": 8, "window": 8},
        "judge": {"kind": "none"},
        "curation": {"poison_ratios": [10.0], "denoise_ratios": [10.0]},
        "causal": {"draws": 2},
        "audit": {"ratio": 10.0},
        "detect": {"folds": 2, "ensemble": 2},
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def outputs(run: Path) -> dict[str, str]:
    """Digest of every pair-score file and edited dataset of a run directory."""
    files = [
        run / "scores" / "pairs.csv",
        run / "scores" / "contributions.safetensors",
        *sorted((run / "curated").glob("*/train.jsonl")),
        *sorted((run / "curated").glob("*/edits.csv")),
    ]
    return {str(f.relative_to(run)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def sae_on_layer(model, renderer, pairs, folder: Path, num_latents: int, steps: int):
    """A TopK SAE (k = 8) trained on every token's state after block 1 of `model` on `pairs` (cached at
    `folder`), for the splice and causal-test tests."""
    from safer_rm.activations import ActivationCache, CacheBatches, extract_pairs
    from safer_rm.reward.scoring import Scorer
    from safer_rm.sae import SAEConfig, train_sae

    extract_pairs(
        Scorer(model, renderer, batch_size=32, progress=False), pairs, 1, "all", folder, dtype="float32"
    )
    cfg = SAEConfig(num_latents=num_latents, k=8, batch_size=128, dead_after=1000)
    return train_sae(CacheBatches(ActivationCache(folder), 128), cfg, steps=steps, lr=3e-3).sae


def evaluation_only(cfg_path: str, cfg: dict) -> None:
    """Write `cfg` back to `cfg_path` with the sweep cut to random edits and no audit or causal test, for tests
    that run the `evaluate/*` stages alone."""
    cfg["curation"] = {**cfg.get("curation", {}), "methods": ["random"], "denoise_ratios": []}
    cfg["audit"] = {"enabled": False}
    cfg["causal"] = {"enabled": False}
    with open(cfg_path, "w") as fh:
        fh.write(yaml.safe_dump(cfg))
