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
CASES = ("amp_gc_on_b2", "amp_gc_on_b4", "amp_gc_off_b2", "amp_gc_off_b4", "bf16_gc_on_b2", "bf16_gc_off_b2")


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
    assert llama["parameters"] > 0 and llama["seq_len"] == 64 and llama["attn_implementation"]
    assert tuple(llama["cases"]) == CASES
    for name, case in llama["cases"].items():
        assert case["error"] is None, (name, case)
        assert case["step_s"] > 0 and case["step_s_min"] <= case["step_s"]
        assert math.isclose(case["tokens_per_s"], case["tokens_per_step"] / case["step_s"], rel_tol=0.01)
        assert case["tokens_per_step"] == case["batch_sequences"] * 64
        assert len(case["losses"]) == 3 and all(math.isfinite(x) and x > 0 for x in case["losses"])
        assert case["peak_gib"] is None and case["peak_rss_gib"] > 0
    assert llama["cases"]["amp_gc_on_b2"]["gradient_checkpointing"] is True
    assert llama["cases"]["amp_gc_off_b4"]["gradient_checkpointing"] is False

    log = out.with_suffix(".log").read_text()
    assert "gpu-check: ok" in log and "stage train-sae: done" in log
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
