"""The Llama part's measurement: a random-weight LlamaForSequenceClassification (num_labels 1) built on the
device, AdamW, and Bradley-Terry steps on (chosen, rejected) pairs of random token ids for each case of the
plan, timed after warm-up, with peak GPU memory (or resident memory on the CPU); an out-of-memory is recorded
in its case and the next case goes on."""

from __future__ import annotations

import gc
import time

from .record import first_line, gib, rss_peak_bytes
from .settings import Settings


def case_name(precision: str, checkpointing: bool, seqs: int, tokens: int) -> str:
    return f"{precision}_gc_{'on' if checkpointing else 'off'}_b{seqs}_t{tokens}"


def flops_per_token(shape: dict, non_embedding: int, tokens: int) -> float:
    """Training FLOPs a token: 6 x the parameters that do matmul work (the embeddings are a lookup) plus the
    attention scores' 12 x blocks x width x context (Kaplan et al. 2020); recomputation is not counted."""
    return 6 * non_embedding + 12 * shape["num_hidden_layers"] * shape["hidden_size"] * tokens


def set_checkpointing(model, on: bool) -> None:
    """Gradient checkpointing on or off (transformers >= 5.2x names it activation checkpointing)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        if on:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_disable()


def run_llama(s: Settings, plan: dict, part: dict, flush, deadline: float) -> None:
    """Time every case of `plan` into part["cases"], calling `flush` after each; stop at `deadline`."""
    import torch
    import torch.nn.functional as F
    from transformers import LlamaConfig, LlamaForSequenceClassification

    if s.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device")
    dev = torch.device(s.device)
    cuda = dev.type == "cuda"
    oom_types = tuple(
        {getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError}
    )
    shape = plan["shape"]
    longest = max(c[3] for c in plan["cases"])
    gen = torch.Generator().manual_seed(0)
    max_seqs = max(c[2] for c in plan["cases"])
    vocab = shape["vocab_size"]
    # token ids below vocab-1, which is the pad id: the classifier reads the reward at the last token
    all_ids = torch.randint(0, vocab - 1, (max_seqs, longest), generator=gen).to(dev)
    mask_all = torch.ones_like(all_ids)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def build(precision: str):
        cfg = LlamaConfig(**shape, num_labels=1, pad_token_id=vocab - 1, use_cache=False)
        torch.manual_seed(0)
        t = time.time()
        with dev:
            model = LlamaForSequenceClassification(cfg)
        if precision == "bf16":
            model = model.to(torch.bfloat16)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0, fused=cuda)
        sync()
        return model, opt, round(time.time() - t, 2)

    model = opt = None
    current = None
    per_step_guess = None
    for precision, checkpointing, seqs, seq in plan["cases"]:
        name = case_name(precision, checkpointing, seqs, seq)
        case: dict = {
            "precision": precision,
            "gradient_checkpointing": checkpointing,
            "batch_sequences": seqs,
            "seq_len": seq,
            "pairs": seqs // 2,
            "tokens_per_step": seqs * seq,
            "error": None,
        }
        part["cases"][name] = case
        left = deadline - time.time()
        need = (
            20.0
            if per_step_guess is None
            else per_step_guess * seqs * seq * (plan["warmup"] + plan["steps"]) * 3 + 10
        )
        if left < need:
            case.update(
                {"skipped": True, "error": f"skipped: {left:.0f} s left of the budget, ~{need:.0f} s needed"}
            )
            flush()
            continue
        try:
            if current != precision:
                model = opt = None
                gc.collect()
                if cuda:
                    torch.cuda.empty_cache()
                model, opt, build_s = build(precision)
                current = precision
                part.setdefault("build_s", {})[precision] = build_s
                part["parameters"] = sum(p.numel() for p in model.parameters())
                embedding = model.get_input_embeddings().weight.numel()  # tied: counted once
                part["non_embedding_parameters"] = part["parameters"] - embedding
                part["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
            set_checkpointing(model, checkpointing)
            ids, mask = all_ids[:seqs, :seq], mask_all[:seqs, :seq]
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            times, losses = [], []
            for i in range(plan["warmup"] + plan["steps"]):
                sync()
                t = time.perf_counter()
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "amp"):
                    rewards = model(input_ids=ids, attention_mask=mask).logits.squeeze(-1).float()
                loss = -F.logsigmoid(rewards[0::2] - rewards[1::2]).mean()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                sync()
                if i >= plan["warmup"]:
                    times.append(time.perf_counter() - t)
                losses.append(round(float(loss.detach()), 4))
                del rewards, loss
                if time.time() > deadline:
                    raise TimeoutError(f"budget ran out after {i + 1} steps")
            step = sum(times) / len(times)
            per_step_guess = step / (seqs * seq)
            tps = seqs * seq / step
            per_token = flops_per_token(shape, part["non_embedding_parameters"], seq)
            case.update(
                {
                    "step_s": round(step, 4),
                    "step_s_min": round(min(times), 4),
                    "tokens_per_s": round(tps, 1),
                    "flops_per_token": per_token,
                    "model_tflops": round(per_token * tps / 1e12, 2),  # without embeddings or recomputation
                    "losses": losses,
                }
            )
            if cuda:
                case.update(
                    {
                        "peak_gib": gib(torch.cuda.max_memory_allocated()),
                        "peak_reserved_gib": gib(torch.cuda.max_memory_reserved()),
                        "resident_gib": gib(torch.cuda.memory_allocated()),  # weights + AdamW state
                    }
                )
            else:
                case["peak_gib"] = None
                case["peak_rss_gib"] = gib(rss_peak_bytes())
        except oom_types as err:
            case.update({"oom": True, "error": "out of memory: " + first_line(str(err), 300)})
            if cuda:
                case["peak_gib"] = gib(torch.cuda.max_memory_allocated())
        except TimeoutError as err:
            case["error"] = first_line(err)
        if case.get("oom"):  # outside the except: its traceback no longer holds the activations
            if opt is not None:
                opt.zero_grad(set_to_none=True)
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
        flush()
