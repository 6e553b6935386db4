"""scripts/compare-runs.py: identical runs pass, a changed score file or accuracy fails and is named, the audit
repeats' scores are compared, and a file every run writes that is missing fails instead of being skipped."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from helpers import ROOT

SCRIPT = ROOT / "scripts" / "compare-runs.py"
FILES = {
    "data/train.jsonl": "{}\n",
    "data/test.jsonl": "{}\n",
    "scores/pairs.csv": "id,safer_score\na,1.0\n",
    "scores/contributions.safetensors": "x",
    "features/selection.json": "{}",
    "curated/poison-safer-5.0/train.jsonl": "{}\n",
    "audit/repeat-0/scores/pairs.csv": "id,safer_score\na,2.0\n",
}


def _run_dir(path, safety=0.5):
    for name, text in FILES.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
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
    assert same.returncode == 0 and f"identical: {len(FILES)}" in same.stdout, same.stdout
    (b / "scores" / "pairs.csv").write_text("id,safer_score\na,1.5\n")
    (b / "audit" / "repeat-0" / "scores" / "pairs.csv").write_text("id,safer_score\na,2.5\n")
    changed = _compare(a, b)
    assert changed.returncode == 1 and "differs: scores/pairs.csv" in changed.stdout
    assert "differs: audit/repeat-0/scores/pairs.csv" in changed.stdout
    c = _run_dir(tmp_path / "c", safety=0.6)
    assert "differs: clean" in _compare(a, c).stdout


def test_a_file_missing_from_both_runs_fails(tmp_path):
    a, b = _run_dir(tmp_path / "a"), _run_dir(tmp_path / "b")
    for run in (a, b):
        (run / "features" / "selection.json").unlink()
    out = _compare(a, b)
    assert out.returncode == 1 and "missing from both runs: features/selection.json" in out.stdout, out.stdout


def test_json_results_compare_values_not_timings_and_name_the_key(tmp_path):
    a = _run_dir(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    for run, cost, auroc in ((a, 12.5, 0.61), (b, 19.0, 0.61)):
        doc = {"cost_s": {"safer": cost}, "detectors": {"safer": {"all": {"auroc": auroc}}}}
        (run / "audit" / "results.json").write_text(json.dumps(doc))
    (a / "eval" / "clean").mkdir(parents=True)
    (a / "eval" / "clean" / "seed-0.json").write_text(json.dumps({"columns": {"Safety": 0.5}}))
    out = _compare(a, b)  # measured seconds differ: not a difference; an evaluation only one run has is
    assert out.returncode == 1 and "differs: audit/results.json" not in out.stdout, out.stdout
    assert f"differs: eval/clean/seed-0.json (only in {a})" in out.stdout
    shutil.copytree(a / "eval", b / "eval")
    assert _compare(a, b).returncode == 0
    doc["detectors"]["safer"]["all"]["auroc"] = 0.7
    (b / "audit" / "results.json").write_text(json.dumps(doc))
    out = _compare(a, b)
    assert out.returncode == 1 and ".detectors.safer.all.auroc: 0.61 vs 0.7" in out.stdout, out.stdout
