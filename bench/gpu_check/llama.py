"""Part `llama`: what one training step of a Llama-3.2-1B-shaped reward model costs. Its shape (and a tiny one
for the CPU test mode), the cases to time (precision x gradient checkpointing x sequences per micro-batch x
tokens a sequence) and the
part's record in the JSON; llama_steps.py builds the model and times the steps."""

from __future__ import annotations

import time
from pathlib import Path

from .llama_steps import run_llama
from .record import first_line, gib, rss_peak_bytes, update
from .settings import Settings, Terminated, settings, stop_on_term

LLAMA_1B = dict(  # Llama-3.2-1B's shape (rope scaling left out: it changes no cost)
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    tie_word_embeddings=True,
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
)
LLAMA_TINY = dict(  # the same model at CPU-test size
    LLAMA_1B,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=512,
    max_position_embeddings=256,
)


PAPER_TOKENS = (
    384  # the paper's pairs are a few hundred tokens (PKU-SafeRLHF, UltraFeedback): launch-bound sizes
)


def llama_plan(s: Settings) -> dict:
    """Cases (precision, gradient checkpointing, sequences per micro-batch, tokens a sequence): the paper
    profile's micro-batch is 2 pairs = 4 sequences (rm.batch_size 2), at its real lengths and at 4,096."""
    if s.tiny:
        short, long_, warmup, steps = 32, 64, 1, 2
    elif s.quick:
        short, long_, warmup, steps = PAPER_TOKENS, 4096, 1, 3
    else:
        short, long_, warmup, steps = PAPER_TOKENS, 4096, 2, 5
    cases = [("amp", True, 4, short), ("amp", False, 4, short), ("bf16", True, 4, short)]
    cases += [("amp", True, 4, long_), ("amp", False, 4, long_), ("amp", True, 2, long_)]
    cases += [("bf16", True, 4, long_), ("bf16", False, 2, long_)]
    if s.quick:
        cases = [("amp", True, 4, short), ("amp", True, 4, long_), ("bf16", True, 4, long_)]
    shape = LLAMA_TINY if s.tiny else LLAMA_1B
    return {"shape": shape, "seq_lens": [short, long_], "warmup": warmup, "steps": steps, "cases": cases}


def cmd_llama(args) -> int:
    s = settings()
    path, budget = Path(args.json), float(args.budget)
    t0 = time.time()
    stop_on_term()
    plan = llama_plan(s)
    part: dict = {
        "status": "running",
        "timeout_s": budget,
        "model": "Llama-3.2-1B shape, random weights" if not s.tiny else "tiny Llama (CPU test mode)",
        "config": plan["shape"],
        "seq_lens": plan["seq_lens"],
        "warmup_steps": plan["warmup"],
        "timed_steps": plan["steps"],
        "loss": "Bradley-Terry: -logsigmoid(r_chosen - r_rejected), sequences in (chosen, rejected) pairs",
        "optimizer": "AdamW lr 1e-5, grad-norm clip 1.0",
        "precisions": {
            "amp": "fp32 weights and AdamW state, bf16 autocast (what rm.bf16: true does through Trainer)",
            "bf16": "bf16 weights, gradients and AdamW state",
        },
        "cases": {},
        "error": None,
    }
    update(path, "llama_1b", part)
    try:
        run_llama(s, plan, part, lambda: update(path, "llama_1b", part), t0 + budget)
        bad = [n for n, c in part["cases"].items() if c.get("error") and not c.get("oom")]
        part["status"] = "failed" if bad else "ok"
        if bad:
            part["error"] = f"{bad[0]}: {part['cases'][bad[0]]['error']}"
    except Terminated as err:
        part.update({"status": "timeout", "error": first_line(err)})
    except Exception as err:
        part.update({"status": "failed", "error": first_line(err)})
    finally:
        part["seconds"] = round(time.time() - t0, 1)
        part["peak_rss_gib"] = gib(rss_peak_bytes())
        update(path, "llama_1b", part)
    print(
        f"gpu-check llama_1b: {part['status']} in {part['seconds']} s"
        + (f" ({part['error']})" if part["error"] else "")
    )
    return 0 if part["status"] == "ok" else 1
