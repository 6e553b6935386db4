from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from helpers import toy_config


def _manifest(run):
    try:
        return json.loads((run / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"stages": {}}


def test_run_killed_during_a_stage_resumes_and_reuses_finished_artifacts(tmp_path, tiny_bert):
    cfg = toy_config(tmp_path, tiny_bert)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "safer_rm.cli", "run", cfg, "-q"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until the SAE stage is under way, then kill -9
        stages = _manifest(run)["stages"]
        if stages.get("train-sae", {}).get("status") == "running" or "features" in stages:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _manifest(run)["stages"]
    finished = {n: s["started"] for n, s in before.items() if s.get("status") == "done"}
    assert "train-rm/clean/seed-0" in finished and "extract" in finished
    assert any(s.get("status") == "running" for s in before.values())  # killed mid-stage
    rm_mtime = (run / "rm" / "clean" / "seed-0" / "model.safetensors").stat().st_mtime_ns
    done = subprocess.run(
        [sys.executable, "-m", "safer_rm.cli", "run", cfg, "-q", "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    after = _manifest(run)["stages"]
    for name, started in finished.items():
        assert after[name]["started"] == started, f"{name} was rerun"
    assert all(s["status"] == "done" for s in after.values())
    assert (run / "rm" / "clean" / "seed-0" / "model.safetensors").stat().st_mtime_ns == rm_mtime
    assert "audit" in json.loads((run / "summary.json").read_text())


def test_checkpoints_of_other_training_data_are_discarded_not_resumed(tmp_path, tiny_bert):
    """A reward model retrained because its data changed must not resume from the old data's last
    checkpoint (which would save the old weights after zero steps: a fold RM would then have seen its fold)."""
    from safer_rm.cli import main

    from helpers import separable_rows, write_jsonl

    cfg = toy_config(tmp_path, tiny_bert, save_checkpoints=True)
    args = ["--stages", "train-rm/clean/seed-0", "-q"]
    assert main(["run", cfg, *args]) == 0
    out = tmp_path / "run" / "rm" / "clean" / "seed-0"
    first = json.loads((out / "train_summary.json").read_text())
    weights = (out / "model.safetensors").read_bytes()
    assert list((out / "checkpoints").glob("checkpoint-*"))
    write_jsonl(tmp_path / "safety.jsonl", separable_rows(32, seed=9))  # other training data
    assert main(["run", cfg, "--resume", *args]) == 0
    again = json.loads((out / "train_summary.json").read_text())
    assert again["steps"] == first["steps"] > 0
    assert (out / "model.safetensors").read_bytes() != weights  # trained anew, not the old last checkpoint


def test_an_edited_file_in_a_dataset_folder_reruns_the_evaluations(tmp_path, tiny_bert):
    """RewardBench as a dataset folder in the hub's layout (data/<split>-00000-of-00001.parquet): its files are
    hashed into the evaluations' inputs, so a resumed run reuses them while the folder is unchanged and
    evaluates again once a file in it changes (hidden files, e.g. a datasets cache, do not count)."""
    import yaml
    from datasets import Dataset

    from safer_rm.cli import main

    cfg_path = toy_config(tmp_path, tiny_bert)
    cfg = yaml.safe_load(open(cfg_path))
    rows = [json.loads(line) for line in (tmp_path / "rb.jsonl").read_text().splitlines()]
    folder = tmp_path / "reward-bench"
    (folder / "data").mkdir(parents=True)
    parquet = folder / "data" / "filtered-00000-of-00001.parquet"
    Dataset.from_list(rows).to_parquet(str(parquet))
    cfg["eval"]["rewardbench"] = str(folder)
    cfg["curation"] = {"methods": ["random"], "poison_ratios": [], "denoise_ratios": []}
    with open(cfg_path, "w") as fh:
        yaml.safe_dump(cfg, fh)
    run = ["run", cfg_path, "-q", "--stages", "evaluate/clean/*"]
    manifest = tmp_path / "run" / "manifest.json"

    def evaluated() -> float:
        """When the clean RM's evaluation last ran."""
        return json.loads(manifest.read_text())["stages"]["evaluate/clean/seed-0"]["started"]

    assert main(run) == 0
    first = evaluated()
    (folder / ".cache").mkdir()
    (folder / ".cache" / "lock").write_text("x")
    assert main([*run, "--resume"]) == 0 and evaluated() == first  # unchanged (a hidden file aside): reused
    Dataset.from_list(rows[:-2]).to_parquet(str(parquet))
    assert (
        main([*run, "--resume"]) == 0 and evaluated() > first
    )  # a file in the folder changed: evaluated again
    result = json.loads((tmp_path / "run" / "eval" / "clean" / "seed-0.json").read_text())
    assert result["sizes"]["rewardbench"] == len(rows) - 2
