"""Two CPU processes through torchrun (gloo): sharded extraction and scoring reproduce one process's pair
scores and activation cache exactly; reward-model training with DDP lands within a tolerance of one
process's metrics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from safer_rm.activations import ActivationCache

from helpers import outputs, toy_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
RM_TOLERANCE = 0.1  # accuracy and final training loss, 2 processes x 4 pairs vs 1 process x 8 pairs


def _safer(*args, launcher=(sys.executable,), timeout=600):
    proc = subprocess.run(
        [*launcher, "-m", "safer_rm.cli", *args, "-q"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _cache_digest(folder: Path) -> list:
    cache = ActivationCache(folder)
    return [{k: v.tolist() for k, v in shard.items()} for shard in cache.iter_shards()]


@pytest.mark.slow(43)
def test_two_processes_shard_extraction_and_scoring_exactly(tmp_path, tiny_bert):
    cfg = toy_config(tmp_path, tiny_bert)
    one = tmp_path / "run"
    _safer("run", cfg)
    two = tmp_path / "run2"
    shutil.copytree(one, two)
    data = yaml.safe_load(open(cfg))
    data["run"]["dir"] = str(two)
    cfg2 = tmp_path / "two.yaml"
    cfg2.write_text(yaml.safe_dump(data))
    # redo extraction and scoring (same RM and SAE) with two processes
    _safer("clear", str(cfg2), "--folders", "activations", "scores", "cache")
    _safer("run", str(cfg2), "--resume", launcher=TORCHRUN)
    manifest = json.loads((two / "manifest.json").read_text())
    assert (
        manifest["stages"]["extract"]["started"]
        > json.loads((one / "manifest.json").read_text())["stages"]["extract"]["started"]
    )
    for which in ("pairs", "general", "heldout"):
        assert _cache_digest(two / "activations" / which) == _cache_digest(one / "activations" / which), which
    assert outputs(two) == outputs(one)
    assert not list((two / "activations" / "pairs").glob(".rank-*"))


def test_reward_model_training_with_ddp_matches_one_process(tmp_path, tiny_bert):
    cfg = toy_config(tmp_path, tiny_bert)
    _safer("evaluate", cfg, "--set", "rm.epochs=3")
    data = yaml.safe_load(open(cfg))
    data["run"]["dir"] = str(tmp_path / "ddp")
    data["rm"]["batch_size"] = 4  # same global batch: 2 processes x 4 pairs
    cfg2 = tmp_path / "ddp.yaml"
    cfg2.write_text(yaml.safe_dump(data))
    _safer("evaluate", str(cfg2), "--set", "rm.epochs=3", launcher=TORCHRUN)
    a = json.loads((tmp_path / "run" / "eval" / "clean" / "seed-0.json").read_text())
    b = json.loads((tmp_path / "ddp" / "eval" / "clean" / "seed-0.json").read_text())
    for key in ("Safety", "Chat", "overall"):
        assert abs(a["rewardbench"][key] - b["rewardbench"][key]) <= RM_TOLERANCE, key
    assert abs(a["heldout"]["safety"] - b["heldout"]["safety"]) <= RM_TOLERANCE
    la = json.loads((tmp_path / "run" / "rm" / "clean" / "seed-0" / "train_summary.json").read_text())
    lb = json.loads((tmp_path / "ddp" / "rm" / "clean" / "seed-0" / "train_summary.json").read_text())
    assert la["steps"] == lb["steps"] and abs(la["train_loss"] - lb["train_loss"]) <= RM_TOLERANCE
