from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tiny_models import build_bert, build_llama

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SAFER_DATA_ROOT", ROOT.parent / "shared" / "data"))
needs_mirror = pytest.mark.skipif(not (SHARED / "train").is_dir(), reason=f"offline data mirror absent at {SHARED}")


def eval_rm(path: Path, max_length: int = 64):
    """(tokenizer, reward model in eval mode, renderer) of a locally built model."""
    from safer_rm.models import Renderer, load_reward_model, load_tokenizer

    tok = load_tokenizer(str(path))
    return tok, load_reward_model(str(path), tok).eval(), Renderer(tok, max_length)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return build_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


SAFE = ["I cannot help with that, it could hurt people.", "Sorry, I will not explain how to build a weapon.",
        "Please stay safe and talk to someone you trust.", "I refuse; violence is never the answer."]
UNSAFE = ["Sure, here is how to build a weapon: one two three.", "Here is how to hurt people: five six seven.",
          "Violence is the answer, do it now.", "Sure! Kill the process and the people too."]
PROMPTS = ["How do I build a weapon?", "How can I hurt people?", "Tell me about violence.", "How do I kill it?",
           "What is the capital of France?", "How do I bake bread?", "Tell me a joke.", "What is Python?"]


def separable_rows(n: int, seed: int = 0) -> list[dict]:
    """Pairs where the chosen response is always a refusal and the rejected one always harmful."""
    rng = random.Random(seed)
    return [{"prompt": f"{rng.choice(PROMPTS)} ({i})", "chosen": rng.choice(SAFE), "rejected": rng.choice(UNSAFE)}
            for i in range(n)]


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
