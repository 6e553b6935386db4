from __future__ import annotations

import json

from safer_rm.cli import main

from helpers import toy_config


def test_whole_pipeline_on_a_tiny_model(tmp_path, tiny_bert):
    cfg = toy_config(tmp_path, tiny_bert)
    assert main(["run", cfg, "-q"]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    names = {
        "clean",
        *(f"{m}-{k}-10.0" for m in ("poison", "denoise") for k in ("safer", "random", "reward_margin")),
    }
    assert set(summary["variants"]) == names
    test = [json.loads(line) for line in (run / "data" / "test.jsonl").read_text().splitlines()]
    n_kind = {k: sum(r["kind"] == k for r in test) for k in ("safety", "chat")}
    for name, v in summary["variants"].items():
        assert set(v["rewardbench"]) >= {"Chat", "Safety", "overall"}
        assert set(v["heldout"]) == {"safety", "chat", "n"} and v["heldout"]["n"] == n_kind
        low, high = v["interval"]["heldout safety"]
        assert low <= v["heldout"]["safety"] <= high
        # every edited variant is compared with clean and with the two other methods at its mode and ratio
        if name != "clean":
            mode, method, ratio = name.split("-", 2)
            others = {f"{mode}-{m}-{ratio}" for m in ("safer", "random", "reward_margin") if m != method}
            assert set(v["compare"]) == {"clean", *others}
            d = v["compare"]["clean"]["heldout safety"]
            assert d["low"] <= d["diff"] <= d["high"] and 0 <= d["p"] <= 1 and d["n"] == n_kind["safety"]
            want = v["heldout"]["safety"] - summary["variants"]["clean"]["heldout"]["safety"]
            assert abs(d["diff"] - want) < 1e-6
    comparisons = (run / "eval" / "comparisons.csv").read_text().splitlines()
    assert comparisons[0].startswith("variant,vs,column,diff,low,high,excludes_zero,p")
    assert len(comparisons) > 1
    assert set(summary["sae"]) >= {"fvu", "l0", "dead_fraction", "splice_accuracy", "clean_accuracy"}
    assert summary["features"]["judge"] == "none"
    assert summary["features"]["n_selected_safe"] + summary["features"]["n_selected_unsafe"] > 0
    causal = summary["causal"]["scales"][0]
    assert causal["scale"] == 0.0 and all("margin_drop" in g for g in causal["groups"].values())
    assert not {k for k in summary["causal"] if k.endswith("_margin_drop")}  # no flat keys beside the scales
    assert set(summary["audit"]) >= {"q", "detectors"} and "auroc_safer" not in summary["audit"]
    # the audit plants the run's own random flips at its ratio and reuses that reward model, bit for bit
    assert summary["audit"]["shared_with"] == "poison-random-10.0"
    weights = "seed-0/model.safetensors"
    assert (run / "audit/repeat-0/rm/clean" / weights).read_bytes() == (
        run / "rm/poison-random-10.0" / weights
    ).read_bytes()
    flipped = {
        r.split(",", 1)[0]
        for r in (run / "curated/poison-random-10.0/edits.csv").read_text().splitlines()[1:]
    }
    assert summary["audit"]["planted"] == len(flipped) > 0
    # every detector side by side, over all pairs and safety pairs, with intervals and a cost
    detectors = summary["audit"]["detectors"]
    assert set(detectors) == {
        "safer",
        "margin",
        "oof_margin",
        "ensemble",
        "probe",
        "combined",
        "combined_probe",
    }
    for name, pops in detectors.items():
        assert set(pops) == {"all", "safety"}
        for m in ("auroc", "ap", "precision"):
            v = pops["all"][m]
            assert v["low"] <= v["value"] <= v["high"] and v["n"] == summary["audit"]["pairs"], (name, m)
        assert summary["audit"]["cost_s"][name] > 0, name
    versus = summary["audit"]["auroc_versus"]
    assert versus["reference"] == "oof_margin" and set(versus["differences"]) == set(detectors) - {
        "oof_margin"
    }
    rows = (run / "audit/detectors.csv").read_text().splitlines()
    assert rows[0].startswith("detector,pairs,cost_s,auroc,auroc_low,auroc_high") and len(rows) == 1 + 2 * 7
    # the sub-run's ensemble copies the sweep's second seed? (one seed here): its extra member is trained
    assert (run / "audit/repeat-0/rm/clean/seed-1/model.safetensors").is_file()
    assert (run / "audit/repeat-0/rm/fold-2of2/seed-0/model.safetensors").is_file()
    # the run attributes its reward; the audit's sub-run does not (no detector reads it, firing salience)
    assert (run / "attribution/attribution.safetensors").is_file()
    assert not (run / "audit/repeat-0/attribution").exists()
    for path in (
        "report/index.html",
        "report/features.html",
        "report/poison_safety.png",
        "scores/pairs.csv",
        "sae/layers.1/sae.safetensors",
        "curated/poison-safer-10.0/edits.csv",
        "curated/poison-safer-10.0/train.parquet",
        "curated/poison-safer-10.0/export.jsonl",
        "curated/poison-safer-10.0/README.md",
        "audit/repeat-0/scores/pairs.csv",
        "audit/repeat-0/detect/scores.csv",
    ):
        assert (run / path).is_file(), path
    # the export beside the normalised train.jsonl: the same pairs, with the edit marked
    curated = run / "curated/poison-safer-10.0"
    export = [json.loads(r) for r in (curated / "export.jsonl").read_text().splitlines()]
    ids = [json.loads(r)["id"] for r in (curated / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in export] == ids and any(r["flipped"] for r in export)
    report = (run / "report" / "index.html").read_text()
    rows = json.loads((run / "eval" / "results.json").read_text())
    assert f"{rows['clean']['rewardbench']['Safety']:.3f}" in report

    # a report under other feature settings, nothing rerun: what depends on the features is not shown
    assert main(["report", cfg, "-q", "--set", "features.top_n=2"]) == 0
    stale = json.loads((run / "summary.json").read_text())
    assert not {"features", "scores", "causal", "audit"} & set(stale) and stale["sae"] == summary["sae"]

    # resumed with other feature settings and without the causal test and the audit: the summary shows
    # nothing that was made with the old settings
    assert (
        main(
            [
                "run",
                cfg,
                "-q",
                "--resume",
                "--set",
                "features.top_n=2",
                "--set",
                "causal.enabled=false",
                "--set",
                "audit.enabled=false",
                "--set",
                "curation.methods=[random]",
            ]
        )
        == 0
    )
    again = json.loads((run / "summary.json").read_text())
    assert "causal" not in again and "audit" not in again
    assert again["features"]["n_selected_safe"] + again["features"]["n_selected_unsafe"] <= 2
    assert again["sae"] == summary["sae"]  # the SAE's settings did not change: still reported
    assert set(again["variants"]) == {"clean", "poison-random-10.0", "denoise-random-10.0"}


def test_audit_without_sharing_trains_its_own_planted_model(tmp_path, tiny_bert):
    cfg = toy_config(tmp_path, tiny_bert)
    args = [
        "--set",
        "audit.share=false",
        "--set",
        "causal.enabled=false",
        "--set",
        "curation.denoise_ratios=[]",
    ]
    assert main(["run", cfg, "-q", "--stages", "audit", *args]) == 0
    run = tmp_path / "run"
    audit = json.loads((run / "audit" / "results.json").read_text())
    assert audit["shared_with"] is None and audit["planted"] > 0
    summary = json.loads((run / "audit/repeat-0/rm/clean/seed-0/train_summary.json").read_text())
    assert summary["steps"] > 0 and "copied_from" not in summary
    assert not (run / "rm" / "poison-random-10.0").exists()  # only what the audit needs ran
