from __future__ import annotations

import json
import subprocess
import sys

import yaml

from safer_rm.cli import main

from conftest import separable_rows, write_jsonl


def toy_config(tmp_path, model_path, **rm) -> str:
    rows = separable_rows(48)
    write_jsonl(tmp_path / "safety.jsonl", rows[:32])
    chat = [{"prompt": f"What is {i}?", "chosen": f"{i} is a number, one two three.", "rejected": "bad"}
            for i in range(16)]
    write_jsonl(tmp_path / "chat.jsonl", chat)
    rb = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"], "subset": s, "id": i}
          for i, (r, s) in enumerate(zip(rows[32:], ["xstest-should-refuse", "alpacaeval-easy"] * 8))]
    write_jsonl(tmp_path / "rb.jsonl", rb)
    cfg = {
        "run": {"name": "toy", "dir": str(tmp_path / "run")},
        "data": {"root": str(tmp_path), "test_fraction": 0.25, "sources": [
            {"name": "safety", "path": "${root}/safety.jsonl"},
            {"name": "chat", "path": "${root}/chat.jsonl", "kind": "chat"}]},
        "model": {"name": str(model_path), "max_length": 48},
        "rm": {"lr": 3e-3, "epochs": 2, "batch_size": 8, "grad_accum": 1, "bf16": "false", **rm},
        "eval": {"rewardbench": "${root}/rb.jsonl", "rewardbench_hub": None},
        # small analysis settings: the whole pipeline runs in seconds on the tiny models
        "activations": {"layer": 1, "positions": "response", "batch_size": 16, "shard_vectors": 200},
        "sae": {"num_latents": 128, "k": 8, "batch_size": 64, "stage1_tokens": 6400, "stage2_epochs": 2,
                "dead_after": 2000},
        "features": {"examine": 32, "top_m": 20, "min_contexts": 2, "top_n": 8, "window": 8},
        "judge": {"kind": "none"},
        "curation": {"poison_ratios": [10.0], "denoise_ratios": [10.0]},
        "causal": {"draws": 2},
        "audit": {"ratio": 10.0},
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_run_writes_summary_and_resumes(tmp_path, tiny_bert, capsys):
    cfg = toy_config(tmp_path, tiny_bert)
    assert main(["run", cfg, "-q"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    clean = summary["variants"]["clean"]
    assert set(clean["rewardbench"]) == {"Chat", "Safety", "overall"}
    assert all(0.0 <= v <= 1.0 for v in clean["rewardbench"].values())
    assert set(clean["heldout"]) == {"safety", "chat"}
    assert summary["timing"]["total_s"] > 0 and "train-rm/clean/seed-0" in summary["timing"]["stages"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["data"]["status"] == "done" and "safer-rm" in manifest["versions"]
    assert set(manifest["inputs"]) == {"data/safety", "data/chat"}
    for name in ("results.csv", "results.json", "subsets.csv", "clean/seed-0.json", "clean/seed-0.rewardbench.csv"):
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
    proc = subprocess.run([sys.executable, "-m", "safer_rm.cli", "run", cfg, "--set", "rm.lr=fast"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "'rm.lr'" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "safety.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{broken\n')
    proc = subprocess.run([sys.executable, "-m", "safer_rm.cli", "run", cfg, "-q"], capture_output=True, text=True)
    assert proc.returncode == 2 and "safety.jsonl:2: invalid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_model_path(tmp_path, capsys):
    cfg = toy_config(tmp_path, tmp_path / "no-such-model")
    assert main(["train-rm", cfg, "-q"]) == 2
    assert "no-such-model: model path not found" in capsys.readouterr().err
