"""Bounded disk: each stage's disk use in the manifest (experiment/disk.py), a reward model's checkpoints gone
once it is saved, and `--dry-run`'s estimate (experiment/estimate.py) beside what a tiny run used."""

from __future__ import annotations

import json

from helpers import toy_config


def test_disk_measured_counts_what_a_block_leaves_and_what_it_deleted(tmp_path):
    from safer_rm.experiment.disk import disk_measured, tree_bytes

    (tmp_path / "old").write_bytes(b"x" * 3000)
    with disk_measured(tmp_path) as disk:
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "new").write_bytes(b"y" * 5000)
        (tmp_path / "old").unlink()
    assert disk["disk_bytes"] == tree_bytes(tmp_path) == 5000
    assert disk["disk_added_bytes"] == 2000
    assert disk["peak_disk_bytes"] >= 5000
    assert tree_bytes(tmp_path / "missing") == 0


def test_tiny_run_records_disk_deletes_checkpoints_and_matches_the_dry_run(tmp_path, tiny_bert, capsys):
    from safer_rm.cli import main
    from safer_rm.config import load_config
    from safer_rm.experiment.estimate import data_sizes, model_shape
    from safer_rm.experiment.estimate_stages import stage_needs

    cfg_path = toy_config(tmp_path, tiny_bert, select_best=True, epochs=2)
    assert main(["run", cfg_path, "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "expected per stage" not in out.out  # the plan alone on stdout, one line a stage
    assert "train-rm" in out.err.split("expected per stage")[1], out.err
    assert main(["run", cfg_path, "-q", "--stages", "train-rm/clean/seed-0", "--stages", "extract"]) == 0
    run = tmp_path / "run"
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    rm_entry, extract = stages["train-rm/clean/seed-0"], stages["extract"]
    for entry in (rm_entry, extract):
        assert entry["peak_disk_bytes"] >= entry["disk_bytes"] >= entry["disk_added_bytes"] > 0, entry
    folder = run / "rm" / "clean" / "seed-0"
    assert not (folder / "checkpoints").exists()  # the best and last were kept while it trained, then deleted
    assert json.loads((folder / "train_summary.json").read_text())["best_step"] > 0

    # what the dry run predicts from the tiny model's config.json and the prepared data, beside what was used
    cfg = load_config(cfg_path)
    needs = stage_needs(cfg, model_shape(str(tiny_bert)), data_sizes(run, cfg))
    weights = (folder / "model.safetensors").stat().st_size
    assert 0.8 < needs["train-rm"].disk / weights < 1.25, (needs["train-rm"], weights)
    assert 0.5 < needs["extract"].disk / extract["disk_added_bytes"] < 2.0, (needs["extract"], extract)
    assert main(["run", cfg_path, "--dry-run", "--resume"]) == 0
    assert "from " + str(run / "data" / "train.jsonl") in capsys.readouterr().err
