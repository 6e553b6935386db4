"""Where a run's time went (experiment/timing.py): stage seconds grouped from a manifest, shares, the audit
sub-runs beside it, and the budget line."""

from __future__ import annotations

import json

from safer_rm.experiment.timing import run_timing, timing_lines


def _manifest(root, stages: dict[str, float], failed: tuple[str, ...] = ()) -> None:
    root.mkdir(parents=True, exist_ok=True)
    entries = {n: {"status": "done", "seconds": s} for n, s in stages.items()}
    entries.update({n: {"status": "failed", "seconds": 99.0} for n in failed})
    (root / "manifest.json").write_text(json.dumps({"stages": entries}))


def test_groups_shares_subruns_and_budget(tmp_path):
    _manifest(
        tmp_path,
        {
            "data": 1.0,
            "train-rm/clean/seed-0": 40.0,
            "train-rm/poison-safer-5.0/seed-0": 30.0,
            "evaluate/clean/seed-0": 9.0,
            "audit": 20.0,
        },
        failed=("causal",),
    )
    _manifest(tmp_path / "audit" / "repeat-0", {"extract": 5.0, "detect": 15.0})
    t = run_timing(tmp_path, budget_s=60.0, wall_s=101.0)
    assert [(g["stage"], g["count"], g["seconds"]) for g in t["groups"]] == [
        ("data", 1, 1.0),
        ("train-rm", 2, 70.0),
        ("evaluate", 1, 9.0),
        ("audit", 1, 20.0),
    ]  # run order; a failed stage is not counted
    assert t["total_s"] == 100.0 and t["groups"][1]["share"] == 0.7
    assert t["over_budget"] and t["largest"] == ["train-rm (x2)", "audit", "evaluate"]
    lines = timing_lines(t)
    assert any("audit/repeat-0: detect" in line for line in lines)
    assert lines[-1].startswith("OVER BUDGET") and "+40 s" in lines[-1]
    assert "train-rm (x2) 70 s (70 %)" in lines[-1]
    within = timing_lines(run_timing(tmp_path, budget_s=200.0))
    assert within[-1] == "within budget: the stages took 100 s of run.budget_s 200 s"
    assert not timing_lines(run_timing(tmp_path))[-1].startswith(("OVER", "within"))  # no budget set


def test_peak_memory_per_stage_and_in_the_table(tmp_path):
    """resources.measured: each stage's own peak, exact where the stage raised the process's high-water mark,
    sampled where it did not; the mark itself is never reset (`/usr/bin/time` still sees the process's peak);
    the table shows the largest instance of each group. Measured in a fresh process, whose mark starts low."""
    import subprocess
    import sys

    script = """
import json, numpy as np
from safer_rm.experiment.resources import measured
with measured() as outer:
    big = np.ones(40_000_000)  # 320 MB, touched
    del big
    with measured() as inner:
        small = np.ones(2_000_000)
        del small
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"outer": outer, "inner": inner, "hwm": int(hwm.split()[1]) * 1024}))
"""
    out = json.loads(
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    )
    outer, inner = out["outer"], out["inner"]
    assert outer["peak_rss_scope"] == "stage"  # it raised the high-water mark: exact
    assert inner["peak_rss_scope"] == "sampled"  # below the mark: the sampler's largest reading
    assert outer["peak_rss_bytes"] > inner["peak_rss_bytes"] + 250 * 2**20
    assert out["hwm"] >= outer["peak_rss_bytes"]  # the process's own peak is kept
    assert "peak_gpu_bytes" not in outer  # no CUDA here
    tmp_path.mkdir(exist_ok=True)
    stages = {
        "train-rm/clean/seed-0": {"status": "done", "seconds": 3.0, "peak_rss_bytes": 2**30},
        "train-rm/poison-safer-5.0/seed-0": {"status": "done", "seconds": 2.0, "peak_rss_bytes": 3 * 2**30},
        "data": {"status": "done", "seconds": 1.0},
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": stages}))
    t = run_timing(tmp_path)
    groups = {g["stage"]: g for g in t["groups"]}
    assert groups["train-rm"]["peak_rss_bytes"] == 3 * 2**30 and groups["data"]["peak_rss_bytes"] is None
    lines = timing_lines(t)
    assert any(line.strip().startswith("train-rm (x2)") and "3.00 GiB RAM" in line for line in lines), lines
