from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from safer_rm.cli import main

from helpers import toy_config


@pytest.mark.slow(36)
def test_run_writes_summary_and_resumes(tmp_path, tiny_bert, capsys):
    cfg = toy_config(tmp_path, tiny_bert)
    assert main(["run", cfg, "-q", "--set", "run.budget_s=0.5"]) == 0
    out = capsys.readouterr().out.splitlines()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # the run ends with where its time went and, past its budget, says so naming the largest stages
    timing = summary["timing"]
    groups = {g["stage"]: g for g in timing["groups"]}
    assert groups["train-rm"]["count"] == groups["evaluate"]["count"] == 1 + 3 * 2  # clean + 3 methods x 2
    assert abs(sum(g["seconds"] for g in groups.values()) - timing["total_s"]) < 0.5
    assert abs(sum(g["share"] for g in groups.values()) - 1) < 0.01
    assert timing["budget_s"] == 0.5 and timing["over_budget"] is True
    assert timing["subruns"]["audit/repeat-0"] and "audit" in groups
    assert out[-1].startswith("OVER BUDGET") and timing["largest"][0].split(" (x")[0] in out[-1]
    assert any(line.strip().startswith("train-rm (x7)") for line in out)
    clean = summary["variants"]["clean"]
    assert set(clean["rewardbench"]) == {"Chat", "Safety", "overall", "n"}
    assert all(0.0 <= v <= 1.0 for k, v in clean["rewardbench"].items() if k != "n")
    assert set(clean["heldout"]) == {"safety", "chat", "n"}
    assert clean["rewardbench"]["n"]["Safety"] == clean["n"]["Safety"] > 0
    assert summary["timing"]["total_s"] > 0 and "train-rm/clean/seed-0" in summary["timing"]["stages"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["data"]["status"] == "done" and "safer-rm" in manifest["versions"]
    # each stage's peak memory (its own, reset when it starts) and the code and machine that ran it
    train = manifest["stages"]["train-rm/clean/seed-0"]
    assert (
        train["peak_rss_scope"] in ("stage", "sampled") and 50 * 2**20 < train["peak_rss_bytes"] < 8 * 2**30
    )
    assert groups["train-rm"]["peak_rss_bytes"] >= train["peak_rss_bytes"]
    box = manifest["machines"][train["machine"]]
    assert box["cores"] >= 1 and "cpu" in box and "commit" in train
    assert any("GiB RAM" in line for line in out)
    assert set(manifest["inputs"]) == {"data/safety", "data/chat"}
    for name in (
        "results.csv",
        "results.json",
        "subsets.csv",
        "clean/seed-0.json",
        "clean/seed-0.rewardbench.csv",
    ):
        assert (tmp_path / "run" / "eval" / name).is_file(), name
    # a second run without --resume refuses to clobber; with --resume it reuses every stage
    assert main(["run", cfg, "-q"]) == 2
    assert "--resume" in capsys.readouterr().err
    before = (tmp_path / "run" / "rm" / "clean" / "seed-0" / "model.safetensors").stat().st_mtime_ns
    assert main(["run", cfg, "-q", "--resume"]) == 0
    assert (tmp_path / "run" / "rm" / "clean" / "seed-0" / "model.safetensors").stat().st_mtime_ns == before
    # a changed setting reruns what depends on it
    assert main(["run", cfg, "-q", "--resume", "--set", "rm.epochs=1"]) == 0
    assert (tmp_path / "run" / "rm" / "clean" / "seed-0" / "model.safetensors").stat().st_mtime_ns != before


def test_bad_input_is_one_line_exit_2(tmp_path, tiny_bert):
    cfg = toy_config(tmp_path, tiny_bert)
    proc = subprocess.run(
        [sys.executable, "-m", "safer_rm.cli", "run", cfg, "--set", "rm.lr=fast"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().count("\n") == 0 and "'rm.lr'" in proc.stderr and "Traceback" not in proc.stderr
    )
    (tmp_path / "safety.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{broken\n')
    proc = subprocess.run(
        [sys.executable, "-m", "safer_rm.cli", "run", cfg, "-q"], capture_output=True, text=True
    )
    assert (
        proc.returncode == 2
        and "safety.jsonl:2: invalid JSON" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_missing_model_path(tmp_path, capsys):
    cfg = toy_config(tmp_path, tmp_path / "no-such-model")
    assert main(["train-rm", cfg, "-q"]) == 2
    assert "no-such-model: model path not found" in capsys.readouterr().err


def test_two_processes_on_one_stage_the_second_is_refused(tmp_path, tiny_bert):
    """Measured before the locks: two `safer train-rm` on one run directory both trained into the same folder."""
    cfg = toy_config(tmp_path, tiny_bert)
    cmd = [sys.executable, "-m", "safer_rm.cli", "train-rm", cfg, "-q", "--set", "rm.epochs=100000"]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    manifest = tmp_path / "run" / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        stages = json.loads(manifest.read_text())["stages"] if manifest.is_file() else {}
        if stages.get("train-rm/clean/seed-0", {}).get("status") == "running":
            break
        time.sleep(0.05)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    still_running = first.poll() is None
    first.kill()
    first.wait()
    assert still_running, (
        "the first process ended before the second asked (it trains 100000 epochs and should only end when killed)"
    )
    assert second.returncode == 2 and second.stderr.strip().count("\n") == 0, second.stderr
    assert f"stage train-rm/clean/seed-0 is being run by pid {first.pid} on " in second.stderr
