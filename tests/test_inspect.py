"""`safer inspect` end to end: existing reward models in hub layout (no training of the clean RM), the
detectors beside each other, the suspects, the report and a cleaned set that `datasets` loads; the scores
equal a full run's for the same RM and SAE; the out-of-fold detector finds planted flips."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from safer_rm.cli import main

from helpers import separable_rows, toy_config, write_jsonl
from tiny_models import build_decoder_rm, build_distilbert


def _inspect_config(tmp_path, backbone, **model) -> str:
    path = toy_config(tmp_path, backbone)
    cfg = yaml.safe_load(open(path))
    cfg["model"].update(model)
    cfg["detect"] = {"folds": 2, "ensemble": 2}
    cfg["inspect"] = {"remove": 10.0, "show": 5}
    open(path, "w").write(yaml.safe_dump(cfg))
    return path


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("kind", ["llama-no-pad", "bert", "distilbert"])
def test_inspect_with_an_existing_reward_model(tmp_path, tiny_llama, tiny_bert, kind):
    from datasets import load_dataset

    existing = {
        "llama-no-pad": lambda p: build_decoder_rm(p, arch="llama", style="llama3"),
        "bert": lambda p: tiny_bert,
        "distilbert": build_distilbert,
    }[kind](tmp_path / "existing")
    backbone = tiny_llama if kind.startswith("llama") else tiny_bert
    cfg = _inspect_config(tmp_path, backbone, reward_model=str(existing))
    assert main(["inspect", cfg, "-q"]) == 0
    run = tmp_path / "run"
    clean = run / "rm" / "clean" / "seed-0"
    info = json.loads((clean / "safer_existing.json").read_text())
    assert info["source"] == str(existing) and not list(clean.glob("*.safetensors"))  # loaded, not trained
    assert info["pad_token"] is not None
    train = (run / "data" / "train.jsonl").read_text().splitlines()
    suspects = _rows(run / "inspect" / "suspects.csv")
    assert len(suspects) == len(train) and [int(r["rank"]) for r in suspects] == list(
        range(1, len(train) + 1)
    )
    detectors = json.loads((run / "detect" / "summary.json").read_text())["detectors"]
    # an existing RM is one model: no seed ensemble; the folds train from the backbone
    assert detectors == ["safer", "margin", "oof_margin", "probe", "combined", "combined_probe"]
    assert (run / "rm" / "fold-1of2" / "seed-0" / "model.safetensors").is_file()
    manifest = json.loads((run / "manifest.json").read_text())["stages"]
    assert "folds" in manifest and not [k for k in manifest if k.startswith("folds/")]  # one folds stage
    assert not [k for k in manifest if k.startswith(("curate", "evaluate", "audit", "causal"))]  # no sweep
    values = [float(r["combined"]) for r in suspects]
    assert values == sorted(values)  # most suspect (lowest) first
    removed = [r["id"] for r in suspects if r["removed"] == "1"]
    assert len(removed) == round(len(train) * 0.10) > 0
    report = (run / "inspect" / "report.html").read_text()
    assert "Suspect pairs" in report and suspects[0]["id"] in report and "features.html#latent-" in report
    cleaned = run / "inspect" / "cleaned"
    ds = load_dataset("parquet", data_files=str(cleaned / "train.parquet"), split="train")
    assert len(ds) == len(train) - len(removed) and not set(removed) & set(ds["id"])
    assert set(ds.column_names) >= {"id", "prompt", "chosen", "rejected", "source", "kind"}
    assert len(load_dataset(str(cleaned), split="train")) == len(ds)
    assert "combined" in (cleaned / "README.md").read_text()


@pytest.mark.parametrize("rm_bf16,act_bf16", [("false", "true"), ("true", "true")])
def test_inspect_scores_equal_the_full_runs_for_the_same_rm_and_sae(tmp_path, tiny_bert, rm_bf16, act_bf16):
    """An existing RM with frozen lower blocks scores through states computed in the precision of its training,
    whichever stage fills its cache first. Precision is forced (CPU autocast runs without AVX-512 BF16, only
    slower), so every machine runs the bf16 path. With `rm.bf16=false` and `activations.bf16=true` (what `auto`
    gives on a bf16 CPU) the extraction used to fill inspect's cache in bf16 where training had filled the run's
    in fp32: scores moved in the 5th digit. The claim: bit-identical in fp32; under bf16, where the frozen
    states of a text may come from other batches than in the run, within 1e-3 of the scores' sd (the same
    features are selected either way)."""
    full = tmp_path / "full"
    full.mkdir()
    cfg = toy_config(full, tiny_bert, freeze_layers=1, bf16=rm_bf16)
    precision = ["--set", f"activations.bf16={act_bf16}"]
    sets = ["--set", "causal.enabled=false", "--set", "audit.enabled=false", "--set", "curation.methods=[]"]
    assert main(["run", cfg, "-q", *sets, *precision]) == 0
    again = tmp_path / "inspect"
    again.mkdir()
    cfg2 = _inspect_config(again, tiny_bert, reward_model=str(full / "run" / "rm" / "clean" / "seed-0"))
    sae = ["--set", f"sae.path={full / 'run' / 'sae'}", "--set", f"rm.bf16={rm_bf16}"]
    assert main(["inspect", cfg2, "-q", *sae, *precision]) == 0
    a = {r["id"]: r for r in _rows(full / "run" / "scores" / "pairs.csv")}
    b = {r["id"]: r for r in _rows(again / "run" / "scores" / "pairs.csv")}
    assert a.keys() == b.keys()
    for col in ("safer_score", "reward_margin"):
        x = np.array([float(a[k][col]) for k in a])
        y = np.array([float(b[k][col]) for k in a])
        if rm_bf16 == "false":
            assert [a[k][col] for k in a] == [b[k][col] for k in a], col  # bit-identical
        else:
            assert np.abs(x - y).max() <= 1e-3 * x.std(), col
    sel = [json.loads((d / "run" / "features" / "selection.json").read_text()) for d in (full, again)]
    assert sel[0]["safe"] == sel[1]["safe"] and sel[0]["unsafe"] == sel[1]["unsafe"]


def test_out_of_fold_margin_finds_planted_flips_on_separable_pairs(tmp_path, tiny_bert):
    path = toy_config(tmp_path, tiny_bert)
    cfg = yaml.safe_load(open(path))
    write_jsonl(tmp_path / "safety.jsonl", separable_rows(160, seed=5))
    cfg["data"]["test_fraction"] = 0.1
    cfg["audit"] = {"ratio": 10.0, "share": False}
    cfg["detect"] = {"folds": 3, "ensemble": 0, "probe": False}
    cfg["causal"] = {"enabled": False}
    cfg["curation"] = {"methods": []}
    open(path, "w").write(yaml.safe_dump(cfg))
    assert main(["run", path, "-q", "--stages", "audit"]) == 0
    audit = json.loads((tmp_path / "run" / "audit" / "results.json").read_text())
    oof = audit["detectors"]["oof_margin"]["all"]
    assert audit["planted"] >= 10
    assert oof["auroc"]["value"] > 0.9 and oof["auroc"]["low"] > 0.7  # chance is 0.5
    assert oof["precision"]["value"] > 0.5  # chance is 0.1


def test_inspect_with_an_existing_reward_model_by_hub_id(tmp_path, tiny_bert):
    """The hub path, offline: the model sits in a Hugging Face cache in the hub's own layout
    (models--org--name/refs/main -> snapshots/<commit>/...), read by its hub id with HF_HUB_OFFLINE=1."""
    import os
    import shutil
    import subprocess
    import sys

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--tiny-rm"
    shutil.copytree(tiny_bert, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    cfg = _inspect_config(tmp_path, tiny_bert, reward_model="acme/tiny-rm")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "safer_rm.cli", "inspect", cfg, "-q"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "rm" / "clean" / "seed-0" / "safer_existing.json").read_text())
    assert info["source"] == "acme/tiny-rm"
    assert (tmp_path / "run" / "inspect" / "cleaned" / "train.parquet").is_file()


def test_an_existing_rm_never_replaces_a_trained_one_and_a_trained_one_replaces_an_existing_pointer(
    tmp_path, tiny_bert, capsys
):
    cfg = _inspect_config(tmp_path, tiny_bert)
    clean = tmp_path / "run" / "rm" / "clean" / "seed-0"
    assert main(["run", cfg, "-q", "--stages", "train-rm/clean/seed-0"]) == 0
    rc = main(["inspect", cfg, "-q", "--set", f"model.reward_model={tiny_bert}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "holds a reward model trained here" in err, err
    assert list(clean.glob("*.safetensors"))  # nothing lost
    other = tmp_path / "other"
    other.mkdir()
    cfg2 = _inspect_config(other, tiny_bert)
    assert main(["inspect", cfg2, "-q", "--set", f"model.reward_model={tiny_bert}"]) == 0
    pointer = other / "run" / "rm" / "clean" / "seed-0" / "safer_existing.json"
    assert pointer.is_file()
    assert main(["run", cfg2, "-q", "--resume", "--stages", "train-rm/clean/seed-0"]) == 0
    assert not pointer.exists() and list(pointer.parent.glob("*.safetensors"))  # now trained here
