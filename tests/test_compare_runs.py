"""scripts/compare-runs.py: identical runs pass, a changed score file or accuracy fails and is named."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from helpers import ROOT

SCRIPT = ROOT / "scripts" / "compare-runs.py"


def _run_dir(path, safety=0.5):
    (path / "scores").mkdir(parents=True)
    (path / "scores" / "pairs.csv").write_text("id,safer_score\na,1.0\n")
    (path / "curated" / "poison-safer-5.0").mkdir(parents=True)
    (path / "curated" / "poison-safer-5.0" / "train.jsonl").write_text("{}\n")
    variants = {"clean": {"rewardbench": {"Safety": safety}, "heldout": {"safety": 0.7}}}
    (path / "summary.json").write_text(json.dumps({"variants": variants}))
    return path


def _compare(a, b):
    return subprocess.run([sys.executable, str(SCRIPT), str(a), str(b)], capture_output=True, text=True)


def test_identical_runs_pass_and_differences_are_named(tmp_path):
    a = _run_dir(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    same = _compare(a, b)
    assert same.returncode == 0 and "identical: 2" in same.stdout, same.stdout
    (b / "scores" / "pairs.csv").write_text("id,safer_score\na,1.5\n")
    changed = _compare(a, b)
    assert changed.returncode == 1 and "differs: scores/pairs.csv" in changed.stdout
    c = _run_dir(tmp_path / "c", safety=0.6)
    assert "differs: clean" in _compare(a, c).stdout
