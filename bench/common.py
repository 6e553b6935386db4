"""Inputs shared by the benchmarks: real pairs from the offline mirror where present (else a fixed synthetic
set), an embedded model (MiniLM, or SmolLM2 rendered as configs/smol.yaml renders it), and interleaved timing
rounds (median rate)."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from safer_rm.data import PreferencePair
from safer_rm.data.load import data_root
from safer_rm.data.records import user_prompt
from safer_rm.models import Renderer, load_tokenizer

ROOT = Path(data_root(str(Path(__file__).resolve().parents[2] / "shared" / "data")))


# embedded model -> (name in the results, Renderer keywords). MiniLM: plain text, the renderer's defaults
# (as the MiniLM benches always had). SmolLM2: its chat template as configs/smol.yaml renders it (an empty
# system turn instead of the template's long default one, at least the last 32 prompt tokens kept).
MODELS = {
    "minilm": ("all-MiniLM-L6-v2", {}),
    "smollm2": ("SmolLM2-135M-Instruct", {"system_prompt": "", "min_prompt_tokens": 32}),
}


def bench_renderer(model: str, max_length: int):
    """(name in the results, tokenizer, Renderer) of an embedded model. `min_prompt_tokens` is capped below
    max_length / 2 (what `ModelConfig.check` allows) so that tiny lengths still render."""
    if model not in MODELS:
        raise ValueError(f"bench model {model!r}: expected one of {', '.join(MODELS)}")
    label, kw = MODELS[model]
    kw = dict(kw)
    if "min_prompt_tokens" in kw:
        kw["min_prompt_tokens"] = min(kw["min_prompt_tokens"], max(0, (max_length - 1) // 2))
    tok = load_tokenizer(model)
    return label, tok, Renderer(tok, max_length, **kw)


def bench_pairs(n: int = 256, seed: int = 0) -> tuple[list[PreferencePair], str]:
    """(pairs, where they came from)."""
    path = ROOT / "train" / "pku-saferlhf-5k.jsonl"
    if path.is_file():
        from safer_rm.data import DropReport, SourceConfig, load_source

        pairs = load_source(SourceConfig("pku", str(path)), "", DropReport())
        return random.Random(seed).sample(pairs, min(n, len(pairs))), str(path)
    words = (
        "the model should refuse to help with harmful requests and answer ordinary questions well .".split()
    )
    rng = random.Random(seed)
    pairs = [
        PreferencePair(
            str(i),
            user_prompt(" ".join(rng.choices(words, k=12))),
            " ".join(rng.choices(words, k=rng.randint(20, 90))),
            " ".join(rng.choices(words, k=rng.randint(20, 90))),
        )
        for i in range(n)
    ]
    return pairs, "synthetic"


def interleaved(fns: dict[str, Callable[[], float]], rounds: int = 3) -> dict[str, float]:
    """Median over rounds of each function's returned seconds; the functions run in turn every round so that
    load from other processes hits them alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(fn())
    return {k: statistics.median(v) for k, v in times.items()}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
