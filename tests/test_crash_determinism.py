"""Crash safety and determinism on CPU: a run killed with SIGKILL at seeded random moments, resumed each
time, ends with pair scores and edited datasets bitwise identical to an uninterrupted run's; two processes
with the same config and seed agree bitwise."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import outputs, toy_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def _config(tmp_path, tiny_bert, run_dir: Path) -> str:
    path = toy_config(tmp_path, tiny_bert)
    cfg = yaml.safe_load(open(path))
    cfg["run"]["dir"] = str(run_dir)
    out = tmp_path / f"{run_dir.name}.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return str(out)


def _run(cfg: str, *extra: str, timeout: float | None = None):
    return subprocess.run(
        [sys.executable, "-m", "safer_rm.cli", "run", cfg, "-q", *extra],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow(46)
def test_two_processes_give_bitwise_identical_scores_and_edits(tmp_path, tiny_bert):
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        done = _run(_config(tmp_path, tiny_bert, run))
        assert done.returncode == 0, done.stderr[-2000:]
    assert outputs(a) == outputs(b) and len(outputs(a)) == 2 + 2 * 6


def kill_points(cfg_path: str) -> list[str]:
    """From the stage registry, in run order: the first instance of every stage, and the last of those that
    run per (variant, seed) (an edited variant's model and its evaluation)."""
    from safer_rm.config import load_config
    from safer_rm.experiment.context import RunContext
    from safer_rm.experiment.plan import Planner

    planner = Planner(RunContext.create(load_config(cfg_path)))
    order = [st.instance(key) for st, key in planner.order(planner.leaves())]
    points = set()
    for st in planner.stages:
        mine = [n for n in order if n == st.name or n.startswith(st.name + "/")]
        points.update(mine[:1] + (mine[-1:] if "/seed-" in "".join(mine[-1:]) else []))
    return [n for n in order if n in points]


@pytest.mark.slow(188)
def test_sigkill_inside_every_stage_then_resume_gives_identical_results(tmp_path, tiny_bert):
    """Two kills per stage, each at a seeded random moment within that stage's duration in the reference run;
    after every kill the run resumes (--resume); the final outputs equal the uninterrupted run's. Each attempt
    runs only up to its stage (--stages), so an attempt whose timer fires after the stage finished does not
    complete the whole run and leave the later stages nothing to kill."""
    reference = tmp_path / "reference"
    assert _run(_config(tmp_path, tiny_bert, reference)).returncode == 0
    want = outputs(reference)
    durations = {
        n: s["seconds"] for n, s in json.loads((reference / "manifest.json").read_text())["stages"].items()
    }
    kill_stages = kill_points(_config(tmp_path, tiny_bert, reference))
    assert set(kill_stages) <= set(durations) and len(kill_stages) >= 12, kill_stages

    run = tmp_path / "killed"
    cfg = _config(tmp_path, tiny_bert, run)
    rng = random.Random(1234)
    kills = []
    for stage in kill_stages:
        for _ in range(2):
            delay = rng.uniform(0, durations[stage])
            proc = subprocess.run(
                [sys.executable, "-m", "safer_rm.cli", "run", cfg, "-q", "--resume", "--stages", stage],
                env={**ENV, "SAFER_KILL_IN_STAGE": stage, "SAFER_KILL_AFTER": f"{delay:.3f}"},
                capture_output=True,
                text=True,
                timeout=600,
            )
            if proc.returncode == -signal.SIGKILL:
                kills.append((stage, round(delay, 3)))
            else:  # the stage finished before the timer fired: the run went on up to that stage
                assert proc.returncode == 0, proc.stderr[-2000:]
    done = _run(cfg, "--resume", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert outputs(run) == want, kills
    manifest = json.loads((run / "manifest.json").read_text())
    assert all(s["status"] == "done" for s in manifest["stages"].values())
    killed_stages = {s for s, _ in kills}
    assert len(kills) >= 12 and len(killed_stages) >= 8, kills
