from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import toy_config


def _manifest(run):
    try:
        return json.loads((run / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"stages": {}}


@pytest.mark.slow(28)
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


class Crash(RuntimeError):
    pass


def _crash_at_save(monkeypatch) -> None:
    """A crash after the last optimiser step and before the model is saved: what a kill late in a training
    leaves behind (its checkpoints, never a saved model)."""
    from safer_rm.reward.train import BradleyTerryTrainer

    save = BradleyTerryTrainer.save_model

    def crash(self, *args, **kwargs):
        if kwargs.get("_internal_call"):  # a checkpoint's own save
            return save(self, *args, **kwargs)
        raise Crash("killed before the model was saved")

    monkeypatch.setattr(BradleyTerryTrainer, "save_model", crash)


def _crashed_training(tmp_path, tiny_bert, monkeypatch, **rm) -> tuple[str, list[str], Path, list[Path]]:
    """(config, stage arguments, RM folder, its checkpoints in step order) after a clean RM's training was
    killed before its save."""
    from safer_rm.cli import main

    cfg = toy_config(tmp_path, tiny_bert, **rm)
    args = ["--stages", "train-rm/clean/seed-0", "-q"]
    out = tmp_path / "run" / "rm" / "clean" / "seed-0"
    with monkeypatch.context() as patch:
        _crash_at_save(patch)
        with pytest.raises(Crash):
            main(["run", cfg, *args])
    left = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return cfg, args, out, left


def test_checkpoints_of_other_training_data_are_discarded_not_resumed(tmp_path, tiny_bert, monkeypatch):
    """A reward model retrained because its data changed must not resume from the old data's last
    checkpoint (which would save the old weights after zero steps: a fold RM would then have seen its fold).
    Once the model is saved, its checkpoints are deleted (bounded disk)."""
    from safer_rm.cli import main

    from helpers import separable_rows, write_jsonl

    cfg, args, out, left = _crashed_training(tmp_path, tiny_bert, monkeypatch, save_checkpoints=True)
    assert left  # the crash kept the checkpoints a resume needs
    old = (left[-1] / "model.safetensors").read_bytes()
    old_steps = json.loads((left[-1] / "trainer_state.json").read_text())["global_step"]
    write_jsonl(tmp_path / "safety.jsonl", separable_rows(32, seed=9))  # other training data
    assert main(["run", cfg, "--resume", *args]) == 0
    again = json.loads((out / "train_summary.json").read_text())
    assert again["steps"] == old_steps > 0
    assert (out / "model.safetensors").read_bytes() != old  # trained anew, not the old last checkpoint
    assert not (out / "checkpoints").exists()


def test_a_crash_late_in_a_training_resumes_from_its_kept_checkpoint(tmp_path, tiny_bert, monkeypatch):
    """select_best keeps the best and the last checkpoint while it trains: a crash before the save resumes
    from the last (no step trained again), loads the best, and deletes both once the model is saved."""
    from safer_rm.cli import main

    cfg, args, out, left = _crashed_training(tmp_path, tiny_bert, monkeypatch, select_best=True, epochs=3)
    assert 1 <= len(left) <= 2  # the best and the last of 3 epochs (one folder when the last is the best)
    state = json.loads((left[-1] / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"].endswith(tuple(p.name for p in left))
    assert main(["run", cfg, "--resume", *args]) == 0
    info = json.loads((out / "train_summary.json").read_text())
    assert info["steps"] == state["global_step"]
    assert info["best_step"] == int(state["best_model_checkpoint"].rsplit("-", 1)[1])
    assert not (out / "checkpoints").exists() and (out / "model.safetensors").is_file()


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


# ---- a reward model is reused while its training set's bytes are unchanged -------------------------------
SWEEP = ("poison-safer-10.0", "poison-random-10.0", "poison-reward_margin-10.0")
REUSED_IF = "reruns (reused if its input files come out the same)"


def _sweep(tmp_path, tiny_bert) -> list[str]:
    """Run the tiny sweep (three poisoned sets, two seeds) up to its evaluations; the command line, to resume."""
    import yaml

    from safer_rm.cli import main

    cfg_path = toy_config(tmp_path, tiny_bert)
    cfg = yaml.safe_load(open(cfg_path))
    cfg["run"]["seeds"] = [0, 1]
    cfg["curation"] = {
        "methods": ["safer", "random", "reward_margin"],
        "poison_ratios": [10.0],
        "denoise_ratios": [],
    }
    with open(cfg_path, "w") as fh:
        yaml.safe_dump(cfg, fh)
    args = ["run", cfg_path, "-q", "--stages", "evaluate/*"]
    assert main(args) == 0
    return args


def _started(run) -> dict[str, float]:
    return {n: s["started"] for n, s in _manifest(run)["stages"].items()}


def _sets(run) -> dict[str, str]:
    """sha256 of every edited training set."""
    import hashlib

    return {v: hashlib.sha256((run / "curated" / v / "train.jsonl").read_bytes()).hexdigest() for v in SWEEP}


def _models(variant: str) -> set[str]:
    """The reward models of a variant and their evaluations."""
    return {f"{stage}/{variant}/seed-{s}" for stage in ("train-rm", "evaluate") for s in (0, 1)}


def test_a_features_change_retrains_only_the_edited_sets_whose_bytes_changed(tmp_path, tiny_bert):
    """Random selection does not read the features: its set comes out byte-identical, so its reward models and
    their evaluations are reused although features, score and every curate reran."""
    from safer_rm.cli import main

    args, run = _sweep(tmp_path, tiny_bert), tmp_path / "run"
    before, sets = _started(run), _sets(run)
    assert main([*args, "--resume", "--set", "features.top_n=2"]) == 0
    after, now = _started(run), _sets(run)
    reran = {n for n, t in after.items() if t != before.get(n)}
    assert {"features", "score", *(f"curate/{v}" for v in SWEEP)} <= reran
    assert not reran & {"data", "train-rm/clean/seed-0", "train-rm/clean/seed-1", "extract", "train-sae"}
    assert now["poison-random-10.0"] == sets["poison-random-10.0"]
    for v in SWEEP:  # retrained exactly where the set's bytes changed
        assert _models(v) <= reran if now[v] != sets[v] else not _models(v) & reran, v
    summary = json.loads((run / "summary.json").read_text())
    assert "poison-random-10.0" in summary["variants"]  # its reused evaluations count as current


def test_an_edited_set_whose_bytes_change_is_trained_on_again(tmp_path, tiny_bert):
    """Another curation seed draws another random set: its models retrain, though the planner hashed the old
    set (a dry-run in the same process) before curate rewrote it."""
    from safer_rm.config import load_config
    from safer_rm.experiment.context import RunContext
    from safer_rm.experiment.runner import Runner

    args, run = _sweep(tmp_path, tiny_bert), tmp_path / "run"
    before, sets = _started(run), _sets(run)
    runner = Runner(RunContext.create(load_config(args[1], ["curation.seed=5"])))
    targets = runner.planner.matching(["evaluate/*"])
    runner.planner.plan(targets)
    done = {d.name: d for d in runner.run(targets)}
    assert _sets(run)["poison-random-10.0"] != sets["poison-random-10.0"]
    after = _started(run)
    assert all(after[n] != before[n] for n in _models("poison-random-10.0"))
    for s in (0, 1):
        assert done[f"train-rm/poison-random-10.0/seed-{s}"].reason.startswith("input.train ")


def test_dry_run_lists_a_model_whose_set_is_rewritten_as_run_and_the_run_reuses_it(
    tmp_path, tiny_bert, capsys
):
    """The dry-run cannot know the set curate will write: it lists the random set's models as run, reused if
    their set comes out the same; the run then reuses them. Nothing it lists as reused is run."""
    from safer_rm.cli import main

    args, run = _sweep(tmp_path, tiny_bert), tmp_path / "run"
    before = _started(run)
    capsys.readouterr()
    assert main([*args, "--resume", "--dry-run", "--set", "features.threshold=3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    plan = {name: (what, reason) for name, what, reason in (line.split(None, 2) for line in lines[:-1])}
    for s in (0, 1):
        rm = f"train-rm/poison-random-10.0/seed-{s}"
        assert plan[rm] == ("run", f"upstream curate/poison-random-10.0 {REUSED_IF}")
        assert plan[f"evaluate/poison-random-10.0/seed-{s}"] == ("run", f"upstream {rm} reruns")
    assert plan["features"][0] == "run" and plan["train-rm/clean/seed-0"][0] == "reuse"
    assert main([*args, "--resume", "--set", "features.threshold=3"]) == 0
    after = _started(run)
    assert all(after[n] == before[n] for n in _models("poison-random-10.0"))
    assert all(after[n] == before[n] for n, (what, _) in plan.items() if what == "reuse")
