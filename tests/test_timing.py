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
