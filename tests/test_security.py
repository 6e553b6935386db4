"""Security and no-data-lost checks on a whole run: the judge's API key appears in no artifact, inputs are
unchanged, every dropped or truncated pair is counted in the manifest, no path escapes the run directory."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from safer_rm.cli import main
from safer_rm.errors import StageError
from safer_rm.experiment.rundir import RunDir

from chat_server import chat_server
from helpers import toy_config

KEY = "sk-planted-4f9a1c2e8b7d6a5f3e2d1c0b"


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow(29)
def test_run_with_a_remote_judge_leaks_no_key_and_loses_no_data(tmp_path, tiny_bert, monkeypatch, caplog):
    seen: list[str] = []
    monkeypatch.setenv("PLANTED_JUDGE_KEY", KEY)
    path = toy_config(tmp_path, tiny_bert)
    cfg = yaml.safe_load(open(path))
    cfg["judge"] = {
        "kind": "openai",
        "model": "judge-model",
        "api_key_env": "PLANTED_JUDGE_KEY",
        "base_url": "http://127.0.0.1:9/v1",
        "max_retries": 0,
    }  # the port is set per run below
    cfg["model"]["max_length"] = 24  # force truncation
    (tmp_path / "safety.jsonl").write_text(
        (tmp_path / "safety.jsonl").read_text() + '{"prompt": "p", "chosen": "same", "rejected": "same"}\n'
    )
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(cfg))
    inputs = {p.name: _sha(p) for p in tmp_path.glob("*.jsonl")}
    with chat_server("Score: 5\nExplanation: refusals", seen) as url:
        assert main(["run", path, "-q", "--set", f"judge.base_url={url}"]) == 0
    assert seen and all(k == f"Bearer {KEY}" for k in seen)
    run = tmp_path / "run"
    leaks = [str(p) for p in run.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaks == [] and KEY not in caplog.text
    assert {p.name: _sha(p) for p in tmp_path.glob("*.jsonl")} == inputs  # inputs untouched
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["data"]["info"]["drops"] == {"safety": {"identical_sides": 1}}
    trunc = manifest["stages"]["train-rm/clean/seed-0"]["info"]["truncation"]
    assert trunc["prompt_truncated"] > 0 and trunc["pairs"] == manifest["stages"]["data"]["info"]["train"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["disk_bytes"]["activations"] > 0 and summary["features"]["judge"] == "openai"
    # caches can be cleared per stage and are rebuilt on resume
    assert main(["clear", path, "--folders", "activations", "cache", "-q"]) == 0
    assert not (run / "activations").exists()
    assert main(["run", path, "-q", "--resume", "--set", "judge.kind=none"]) == 0
    assert (run / "activations" / "pairs" / "index.json").is_file()


def test_run_dir_paths_cannot_escape(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.path("data", "train.jsonl") == tmp_path / "run" / "data" / "train.jsonl"
    for bad in (("..", "outside.txt"), ("/etc", "passwd"), ("curated", "..", "..", "x")):
        with pytest.raises(StageError, match="outside the run directory"):
            run.path(*bad)


def test_remote_code_and_pickle_are_off_by_default():
    from safer_rm.config import Config

    cfg = Config()
    assert cfg.model.trust_remote_code is False and cfg.model.allow_pickle is False
    assert cfg.judge.trust_remote_code is False
