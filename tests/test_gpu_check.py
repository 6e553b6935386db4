"""scripts/gpu-check.sh end to end in its CPU tiny mode (SAFER_GPU_CHECK_DEVICE=cpu): the same shell script and
bench/gpu_check/ code paths as on a GPU (set-up, begin, the whole `safer run configs/smol.yaml` pipeline with
per-stage times and peak memory read from the run's manifest, the Llama Bradley-Terry steps with and without
gradient checkpointing, the JSON), with a tiny local Llama instead of SmolLM2 and tiny sizes. No GPU is needed
or used."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT, SHARED, needs_mirror
from tiny_models import build_llama

SCRIPT = ROOT / "scripts" / "gpu-check.sh"
STAGES = (
    "data",
    "train-rm/clean/seed-0",
    "pool",
    "evaluate/clean/seed-0",
    "extract",
    "train-sae",
    "attribute",
    "features",
    "score",
    "curate/poison-safer-5.0",
    "train-rm/poison-safer-5.0/seed-0",
    "evaluate/poison-safer-5.0/seed-0",
    "causal",
)
CASES = (  # the paper's micro-batch of 4 sequences at its real lengths (tiny: 32) and at 4,096 (tiny: 64)
    "amp_gc_on_b4_t32",
    "amp_gc_off_b4_t32",
    "bf16_gc_on_b4_t32",
    "amp_gc_on_b4_t64",
    "amp_gc_off_b4_t64",
    "amp_gc_on_b2_t64",
    "bf16_gc_on_b4_t64",
    "bf16_gc_off_b2_t64",
)


def _env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OUT" and not k.startswith("SAFER_GPU_CHECK_")}
    env.update(
        {
            "SAFER_GPU_CHECK_DEVICE": "cpu",
            "SAFER_GPU_CHECK_PYTHON": sys.executable,
            "SAFER_GPU_CHECK_RUN_DIR": str(tmp_path / "runs" / "gpu-check"),
            "SAFER_GPU_CHECK_DATA": str(SHARED),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
    )
    env.update(extra)
    return env


def _run(args, env, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@needs_mirror
@pytest.mark.slow(40)
def test_gpu_check_cpu_tiny_mode_writes_every_field(tmp_path):
    model = build_llama(tmp_path / "tiny-llama")
    out = tmp_path / "out" / "gpu-check.json"
    proc = _run([str(out)], _env(tmp_path, SAFER_GPU_CHECK_MODEL=str(model)))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["schema"] == 1 and doc["mode"] == "cpu-tiny" and doc["status"] == "ok"
    assert doc["errors"] == {}
    assert 0 < doc["total_wall_s"] < 300 and doc["time_limit_s"] == 570
    assert doc["device"]["type"] == "cpu" and doc["device"]["name"]
    assert doc["versions"]["torch"] and doc["versions"]["transformers"]
    assert set(doc["parts"]) == {"setup", "pipeline", "llama_1b"}

    setup = doc["parts"]["setup"]
    assert setup["status"] == "ok" and setup["missing_modules"] == [] and setup["import_errors"] == {}
    assert setup["how"].startswith("given interpreter")

    pipe = doc["parts"]["pipeline"]
    assert pipe["status"] == "ok" and pipe["error"] is None and pipe["rc"] == 0
    assert pipe["model"] == str(model) and pipe["judge"] == "none"
    assert "run.device=cpu" in pipe["overrides"] and "curation.methods=[safer]" in pipe["overrides"]
    assert set(pipe["stages"]) == set(STAGES), pipe["stages"]
    assert all(pipe["stage_status"][s] == "done" for s in STAGES)
    assert all(0 <= pipe["stages"][s] < pipe["seconds"] for s in STAGES)
    assert pipe["stages_total_s"] <= pipe["run_s"] <= pipe["seconds"] <= pipe["timeout_s"]
    assert pipe["summary_total_s"] is not None and pipe["train_pairs"] > 0
    assert 0 <= pipe["accuracy"]["clean"]["Safety"] <= 1
    assert pipe["stage_info"]["train-rm/clean/seed-0"]["steps"] > 0
    assert pipe["peak_gpu_gib"] is None and pipe["stage_peak_gpu_gib"] == {}  # no GPU: RSS instead
    assert 0 < pipe["peak_rss_gib"] < 24
    run = tmp_path / "runs" / "gpu-check"
    assert (run / "summary.json").is_file() and (run / "manifest.json").is_file()
    # each stage's peak memory is the one the runner recorded in the manifest beside its seconds
    manifest = json.loads((run / "manifest.json").read_text())["stages"]
    assert set(pipe["stage_peak_rss_gib"]) == set(STAGES) == set(pipe["stage_peak_rss_scope"])
    for s in STAGES:
        assert "peak_gpu_bytes" not in manifest[s]
        assert pipe["stages"][s] == manifest[s]["seconds"]
        assert 0 < pipe["stage_peak_rss_gib"][s] == round(manifest[s]["peak_rss_bytes"] / 2**30, 3)
        assert pipe["stage_peak_rss_scope"][s] == manifest[s]["peak_rss_scope"] in ("stage", "sampled")
    assert max(pipe["stage_peak_rss_gib"].values()) <= pipe["peak_rss_gib"]

    llama = doc["parts"]["llama_1b"]
    assert llama["status"] == "ok" and llama["error"] is None
    assert llama["parameters"] > 0 and llama["seq_lens"] == [32, 64] and llama["attn_implementation"]
    # FLOPs without the embeddings (a lookup): tied, counted once
    assert llama["parameters"] - llama["non_embedding_parameters"] == 512 * 64
    assert tuple(llama["cases"]) == CASES
    for name, case in llama["cases"].items():
        assert case["error"] is None, (name, case)
        assert case["step_s"] > 0 and case["step_s_min"] <= case["step_s"]
        assert math.isclose(case["tokens_per_s"], case["tokens_per_step"] / case["step_s"], rel_tol=0.01)
        assert case["tokens_per_step"] == case["batch_sequences"] * case["seq_len"]
        per_token = 6 * llama["non_embedding_parameters"] + 12 * 2 * 64 * case["seq_len"]
        assert case["flops_per_token"] == per_token
        assert math.isclose(case["model_tflops"], per_token * case["tokens_per_s"] / 1e12, abs_tol=0.01)
        assert len(case["losses"]) == 3 and all(math.isfinite(x) and x > 0 for x in case["losses"])
        assert case["peak_gib"] is None and case["peak_rss_gib"] > 0
    assert llama["cases"]["amp_gc_on_b4_t32"]["gradient_checkpointing"] is True
    assert llama["cases"]["amp_gc_off_b4_t64"]["gradient_checkpointing"] is False

    # the paper profile's training path: gradient checkpointing and accumulation through the Trainer, the best
    # epoch kept and the checkpoints deleted once saved, SAE stage 1 streamed
    for flag in ("rm.gradient_checkpointing=true", "rm.grad_accum=2", "rm.select_best=true"):
        assert flag in pipe["overrides"], flag
    assert "activations.general_source=stream" in pipe["overrides"]
    assert pipe["checkpoints_left"] == [] and not (run / "activations" / "general").exists()
    trained = pipe["stage_info"]["train-rm/clean/seed-0"]
    assert trained["gradient_checkpointing"] is True and trained["grad_accum"] == 2, trained
    args = json.loads((run / "rm" / "clean" / "seed-0" / "training_args.json").read_text())
    assert args["gradient_accumulation_steps"] == 2 and args["load_best_model_at_end"] is True
    assert set(pipe["stage_peak_disk_gib"]) == set(STAGES) and pipe["peak_disk_gib"] > 0

    log = out.with_suffix(".log").read_text()
    assert "gpu-check: ok" in log and "stage train-sae: done" in log
    assert "\r" not in log and "it/s]" not in log  # progress bars off in the log
    assert re.search(r"\n +train-sae +[0-9.]+ s  rss [0-9.]+ GiB\n", log), log[-3000:]


def test_gpu_check_keeps_the_deadline_and_writes_to_out(tmp_path):
    """$OUT wins over the argument; a deadline too short for any part skips them and says so in the JSON."""
    env = _env(tmp_path, OUT=str(tmp_path / "device-out"), SAFER_GPU_CHECK_LIMIT="45")
    proc = _run([str(tmp_path / "ignored.json")], env, timeout=180)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert not (tmp_path / "ignored.json").exists()
    doc = json.loads((tmp_path / "device-out" / "gpu-check.json").read_text())
    assert doc["status"] == "failed" and doc["parts"]["setup"]["status"] == "ok"
    for part in ("pipeline", "llama_1b"):
        assert doc["parts"][part]["status"] == "skipped"
        assert doc["errors"][part].startswith("skipped:")
    assert doc["total_wall_s"] < 45


@needs_mirror
@pytest.mark.slow(33)
def test_gpu_check_prepare_then_offline_setup(tmp_path):
    """`--prepare` (wheels of what the GPU image lacks, the data mirror, SmolLM2's shape) and then the check's
    offline set-up, as on the lent machine: the image's python3 with the carried wheels in a site folder and
    src/ on PYTHONPATH, nothing installed of ours. That interpreter is SAFER_GPU_CHECK_IMAGE_PYTHON where set (a
    venv with the device image's Python and versions, docs/scaling.md says how to make one), else this one.
    Against an image interpreter every wheel --prepare carries is fetched (what the device step will install);
    else two, enough to prove the path."""
    prepared, whl = tmp_path / "prepared", tmp_path / "whl"
    image = os.environ.get("SAFER_GPU_CHECK_IMAGE_PYTHON")
    few = {} if image else {"SAFER_GPU_CHECK_WHEELS": "simple-parsing docstring-parser"}
    env = _env(tmp_path, SAFER_GPU_CHECK_PREPARED=str(prepared), SAFER_GPU_CHECK_WHEEL_DIR=str(whl), **few)
    proc = _run(["--prepare"], env, timeout=600)
    if proc.returncode != 0 and re.search(
        r"(?i)connection|network|resolve|no matching distribution", proc.stderr
    ):
        pytest.skip("--prepare downloads wheels: no package registry reachable here")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = {p.name.split("-")[0] for p in whl.glob("*.whl")}
    assert {"simple_parsing", "docstring_parser"} <= names and (not image or "eai_sparsify" in names), names
    assert (prepared / "data" / "train").is_dir()
    assert (prepared / "smollm2-shape" / "config.json").is_file()
    assert (prepared / "smollm2-shape" / "tokenizer.json").is_file()

    image = image or sys.executable
    out = tmp_path / "offline" / "gpu-check.json"
    offline = _env(
        tmp_path,
        SAFER_GPU_CHECK_PREPARED=str(prepared),
        SAFER_GPU_CHECK_WHEEL_DIR=str(whl),
        SAFER_GPU_CHECK_SETUP="offline",
        SAFER_GPU_CHECK_SYSTEM_PYTHON=image,
        SAFER_GPU_CHECK_PARTS="llama",
    )
    proc = _run([str(out)], offline)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    setup = doc["parts"]["setup"]
    assert setup["how"].startswith(f"offline: {image}") and f"wheels from {whl}" in setup["how"], setup
    assert setup["missing_modules"] == [] and setup["import_errors"] == {}, setup
    assert (prepared / "site" / "simple_parsing").is_dir()
    assert doc["parts"]["llama_1b"]["status"] == "ok" and doc["status"] == "ok"
