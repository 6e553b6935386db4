"""compare_options and `safer compare`: run directories that differ only in their feature selection, written
in the real formats (evaluations through `write_margins`, the audit through `detector_metrics`), compared
variant by variant and audit by audit; runs in an older layout refused with one line naming their version."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from safer_rm.cli import main

SEEDS = (0, 1)
SHARED = ("clean", "poison-random-5.0", "poison-reward_margin-5.0")
SAFER = "poison-safer-5.0"
N_BOOT = 200
TRAIN = 60


def _eval_sets():
    """A RewardBench-style set (Safety and Chat sections) and a grouped held-out set."""
    from safer_rm.data.records import PreferencePair
    from safer_rm.reward.evaluate import EvalSet

    def pair(pid, source, kind, subset=None):
        meta = {"subset": subset} if subset else {}
        return PreferencePair(pid, [{"role": "user", "content": pid}], "a", "b", source, kind, meta)

    rb = [pair(f"rewardbench:{i}", "rewardbench", "safety", "refusals-dangerous") for i in range(20)]
    rb += [pair(f"rewardbench:{i}", "rewardbench", "chat", "alpacaeval-easy") for i in range(20, 44)]
    held = [pair(f"src:{i}", "src", "safety" if i % 2 else "chat") for i in range(30)]
    return [EvalSet("rewardbench", rb, "rewardbench"), EvalSet("heldout", held, "grouped")]


def _write_eval(run, variant, seed, rng, reverse=False):
    """eval/<variant>/seed-<s>.json and its margin files as the evaluate stage writes them."""
    from safer_rm.io import write_json
    from safer_rm.reward.evaluate import columns, write_margins

    path = run / "eval" / variant / f"seed-{seed}.json"
    metrics = {"columns": {}, "sizes": {}, "styles": {}}
    for es in _eval_sets():
        margin = rng.normal(0.3, 1.0, len(es.pairs))
        for label, idx in columns(es).items():
            metrics["columns"][label] = {"accuracy": float((margin[idx] > 0).mean()), "n": int(idx.size)}
        metrics["sizes"][es.name], metrics["styles"][es.name] = len(es.pairs), es.style
        order = slice(None, None, -1) if reverse else slice(None)  # another pair order: matched by id
        write_margins(path.with_suffix(f".{es.name}.csv"), es.pairs[order], margin[order])
    write_json(path, metrics)


def _causal_scales(rng):
    """causal/results.json in today's layout (one scale, two groups), its statistics from safer_rm.stats."""
    from safer_rm.stats import mean_interval, paired_difference

    groups, conditions = {}, {}
    for name in ("Safety", "heldout chat"):
        base, edited = rng.random(20) > 0.3, rng.random(20) > 0.5
        drop = rng.normal(0.1, 0.2, 20)
        groups[name] = {"n": 20, "base": {"accuracy": mean_interval(base).to_json(), "margin": 0.4}}
        conditions[name] = {
            "accuracy": mean_interval(edited).to_json(),
            "accuracy_diff": paired_difference(edited, base).to_json(),
            "margin_drop": mean_interval(drop).to_json(),
            "mean_abs_margin_change": 0.2,
            "random": {"accuracy": 0.6, "margin_drop": 0.01, "margin_drop_sd": 0.005},
            "versus_random": paired_difference(edited, rng.random(20) > 0.4).to_json(),
        }
    scale = {"scale": 0.0, "specificity": 2.5, "random_specificity": 1.1, "groups": conditions}
    return {"n_latents": 4, "draws": 3, "n_boot": 100, "groups": groups, "scales": [scale]}


CAUSAL_FLAT = {"n_latents": 4, "draws": 3, "safety_margin_drop": 0.05, "random_safety_margin_drop": 0.003}
"""causal/results.json as versions before the scales wrote it: no longer read."""


PLANTED = np.arange(TRAIN) % 7 == 0
SAFETY = np.arange(TRAIN) % 3 != 0


def _write_audit(run, safer, planted=PLANTED):
    """audit/results.json (through detector_metrics), audit/repeat-0/detect/scores.csv and the repeat's
    manifest with the planted ids its data stage was given."""
    from safer_rm.curation.detectors import detector_metrics
    from safer_rm.io import write_csv, write_json

    ids = [f"train:{i}" for i in range(TRAIN)]
    kind = ["safety" if s else "chat" for s in SAFETY]
    margin = np.linspace(-1, 1, TRAIN)[::-1]
    values = {"safer": safer, "margin": margin}
    safety = SAFETY
    metrics = detector_metrics({k: [v] for k, v in values.items()}, [planted], [safety], n_boot=50)
    write_json(
        run / "audit" / "results.json",
        {
            "q": 10.0,
            "scope": "all",
            "repeats": 1,
            "planted": int(planted.sum()),
            "pairs": TRAIN,
            "detectors": metrics,
        },
    )
    rows = [
        {"id": i, "source": "train", "kind": k, "safer": s, "margin": m}
        for i, k, s, m in zip(ids, kind, safer, margin)
    ]
    repeat = run / "audit" / "repeat-0"
    write_csv(repeat / "detect" / "scores.csv", rows)
    given = {"planted": [i for i, p in zip(ids, planted) if p], "shared": "poison-random-5.0"}
    write_json(repeat / "manifest.json", {"stages": {"data": {"values": {"input.given": given}}}})


def _write_features(run, ranking, n_safe):
    from safer_rm.io import write_json

    spec = {
        "threshold": 2.0,
        "pairs": {"safety": 10, "chat": 10},
        "kept": [1, 2],
        "tested": {"1": {}, "2": {}, "3": {}},
    }
    doc = {
        "ranking": ranking,
        "selection": {"safe": list(range(n_safe)), "unsafe": [99]},
        "specificity": spec,
    }
    write_json(run / "features" / "features.json", doc)
    write_json(run / "attribution" / "summary.json", {"check": {"pearson": 0.9, "slope": 1.1}})


@pytest.fixture
def runs(tmp_path):
    """Three options: `firing` (base, seeds 0 and 1), `attr` (seeds 0 and 1, its evaluations written in
    reversed pair order), `spec` (seed 0 alone). The shared variants are the same files in every run; the SAFER
    variants, SAFER scores and selections differ."""
    rng = np.random.default_rng(0)
    base = tmp_path / "firing"
    for variant in SHARED:
        for s in SEEDS:
            _write_eval(base, variant, s, rng)
    out = {"firing": base, "attr": tmp_path / "attr", "spec": tmp_path / "spec"}
    for k, (label, run) in enumerate(out.items()):
        for variant in SHARED if run != base else ():
            shutil.copytree(base / "eval" / variant, run / "eval" / variant)
        for s in SEEDS if label != "spec" else SEEDS[:1]:
            _write_eval(run, SAFER, s, rng, reverse=label == "attr")
        (run / "data").mkdir(parents=True)
        (run / "data" / "train.jsonl").write_text('{"id": "train:0"}\n')
        (run / "causal").mkdir(parents=True)
        (run / "causal" / "results.json").write_text(json.dumps(_causal_scales(rng)))
        _write_audit(run, rng.normal(0, 1, TRAIN))
        _write_features(run, ["firing", "attribution", "firing"][k], 3 + k)
    return out


def _compare(runs, **kw):
    from safer_rm.experiment.options import compare_options

    return compare_options(runs["firing"], runs, n_boot=N_BOOT, **kw)


def _accuracy(run, variant, seeds, ids_of):
    """Hand-computed accuracy per seed of a column: from the margin CSVs, over the ids `ids_of` selects."""
    from safer_rm.io import read_csv

    out = []
    for s in seeds:
        rows = read_csv(run / "eval" / variant / f"seed-{s}.rewardbench.csv")
        got = [float(r["margin"]) > 0 for r in rows if ids_of(r)]
        out.append(np.mean(got))
    return np.array(out)


def _is_safety(row):
    return row["subset"] == "refusals-dangerous"


def test_differences_are_the_accuracy_differences(runs):
    result = _compare(runs)
    assert result["base"] == "firing" and result["columns"] == [
        "Safety",
        "Chat",
        "heldout safety",
        "heldout chat",
    ]
    entry = result["options"]["attr"]["variants"][SAFER]
    mine = _accuracy(runs["attr"], SAFER, SEEDS, _is_safety)
    assert entry["seeds"] == [0, 1]
    assert entry["intervals"]["Safety"]["value"] == pytest.approx(mine.mean(), abs=1e-6)
    for name, ref in (
        ("clean", "clean"),
        ("random", "poison-random-5.0"),
        ("reward_margin", "poison-reward_margin-5.0"),
    ):
        d = entry["versus"][name]
        assert d["variant"] == ref and d["seeds"] == [0, 1]
        expected = (mine - _accuracy(runs["firing"], ref, SEEDS, _is_safety)).mean()
        assert d["columns"]["Safety"]["diff"] == pytest.approx(expected, abs=1e-6)
    vs_base = entry["options"]["firing"]["columns"]["Safety"]
    expected = (mine - _accuracy(runs["firing"], SAFER, SEEDS, _is_safety)).mean()
    assert (
        vs_base["diff"] == pytest.approx(expected, abs=1e-6) and vs_base["n"] == 20 and vs_base["seeds"] == 2
    )


def test_seeds_are_those_both_sides_have(runs):
    result = _compare(runs)
    spec = result["options"]["spec"]["variants"][SAFER]
    assert spec["seeds"] == [0] and spec["versus"]["clean"]["seeds"] == [0]
    assert spec["options"]["firing"]["seeds"] == [0]
    mine = _accuracy(runs["spec"], SAFER, [0], _is_safety)
    theirs = _accuracy(runs["firing"], SAFER, [0], _is_safety)
    assert spec["options"]["firing"]["columns"]["Safety"]["diff"] == pytest.approx(
        (mine - theirs)[0], abs=1e-6
    )
    assert result["references"]["clean"]["seeds"] == [0, 1]


def test_intervals_contain_the_value(runs):
    result = _compare(runs)
    entries = [*result["references"].values()]
    entries += [e for o in result["options"].values() for e in o["variants"].values()]
    for e in entries:
        for iv in e["intervals"].values():
            assert iv["low"] <= iv["value"] <= iv["high"]
    for o in result["options"].values():
        for e in o["variants"].values():
            for d in [*e["versus"].values(), *e["options"].values()]:
                for p in d["columns"].values():
                    assert p["low"] <= p["diff"] <= p["high"]


def test_an_option_against_itself_differs_by_nothing(runs):
    result = _compare({"firing": runs["firing"], "again": runs["firing"]})
    same = result["options"]["again"]["variants"][SAFER]["options"]["firing"]["columns"]
    assert all(p["diff"] == p["low"] == p["high"] == 0.0 for p in same.values())
    audit = result["options"]["again"]["audit"]["versus"]["firing"]
    assert audit["safety"]["diff"] == audit["all"]["diff"] == 0.0


def test_mismatched_pair_ids_name_the_file(runs):
    from safer_rm.errors import SaferError

    bad = runs["attr"] / "eval" / SAFER / "seed-1.rewardbench.csv"
    bad.write_text(bad.read_text().replace("rewardbench:3,", "rewardbench:999,"))
    with pytest.raises(SaferError, match="different pairs") as err:
        _compare(runs)
    assert str(bad) in str(err.value) and "'Safety'" in str(err.value)


def test_causal_audit_and_selection(runs):
    from safer_rm.io import read_csv
    from safer_rm.metrics import auroc

    result = _compare(runs)
    causal = result["options"]["firing"]["causal"]
    assert causal["n_latents"] == 4 and causal["draws"] == 3 and len(causal["scales"]) == 1
    group = causal["scales"][0]["groups"]["Safety"]
    assert group["n"] == 20 and group["random_margin_drop_sd"] == 0.005 and group["versus_random"]["n"] == 20
    assert set(group) >= {"base_accuracy", "accuracy", "accuracy_diff", "margin_drop", "random_margin_drop"}
    audit = result["options"]["attr"]["audit"]
    assert audit["detectors"]["safer"]["safety"]["low"] <= audit["detectors"]["safer"]["safety"]["value"]
    versus = audit["versus"]["firing"]
    safer = {
        k: [float(r["safer"]) for r in read_csv(runs[k] / "audit/repeat-0/detect/scores.csv")] for k in runs
    }
    a, b, y = np.array(safer["attr"])[SAFETY], np.array(safer["firing"])[SAFETY], PLANTED[SAFETY]
    expected = auroc(-a, y) - auroc(-b, y)
    assert versus["safety"]["diff"] == pytest.approx(expected, abs=1e-6)
    assert versus["safety"]["low"] <= versus["safety"]["diff"] <= versus["safety"]["high"]
    back = result["options"]["firing"]["audit"]["versus"]["attr"]["safety"]
    assert back["diff"] == pytest.approx(-versus["safety"]["diff"]) and back["low"] == pytest.approx(
        -versus["safety"]["high"]
    )
    features = result["options"]["attr"]["features"]
    assert (features["safe"], features["unsafe"], features["ranking"]) == (4, 1, "attribution")
    assert features["specificity"] == {"threshold": 2.0, "tested": 3, "kept": 2}
    assert features["attribution"] == {"pearson": 0.9, "slope": 1.1}


def test_a_different_planted_set_raises(runs):
    from safer_rm.errors import SaferError

    manifest = runs["spec"] / "audit" / "repeat-0" / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["stages"]["data"]["values"]["input.given"]["planted"][0] = "train:1"
    manifest.write_text(json.dumps(doc))
    with pytest.raises(SaferError, match="planted different pairs") as err:
        _compare(runs)
    assert str(runs["spec"] / "audit" / "repeat-0" / "detect" / "scores.csv") in str(err.value)


def test_shared_files_are_checked(runs):
    assert _compare(runs)["shared_files"]["identical"] == ["data/train.jsonl"]
    (runs["spec"] / "data" / "train.jsonl").write_text('{"id": "train:1"}\n')
    files = _compare(runs)["shared_files"]
    assert files["differ"] == ["data/train.jsonl"] and "data/test.jsonl" in files["missing"]


# ---- safer compare ----------------------------------------------------------------------------------------
def test_safer_compare_prints_and_writes_the_tables(runs, tmp_path, capsys):
    out_json, out_md = tmp_path / "out.json", tmp_path / "out.md"
    options = ["--option", f"attr={runs['attr']}", "--option", f"spec={runs['spec']}"]
    argv = ["compare", str(runs["firing"]), *options, "--bootstrap", str(N_BOOT)]
    assert main([*argv, "--json", str(out_json), "--markdown", str(out_md)]) == 0
    text = capsys.readouterr().out
    heads = [
        "### Accuracy: poison 5.0 %",
        "### Differences: poison-safer-5.0",
        "### Causal test: firing",
        "### Causal test: spec",
        "### Audit: the safer detector",
        "### Audit: the other detectors",
        "### Selection",
    ]
    assert [h for h in heads if h not in text] == []
    assert (
        "| firing | poison-random-5.0 | 0,1 |" in text
        and "Safety (n=20)" in text
        and "| attr | option firing | 0,1 |" in text
    )
    assert "| spec | option firing | 0 |" in text
    assert "do not differ" in text and "Shared files identical in every option: 1;" in text
    assert out_md.read_text().strip() == text.strip()
    assert set(json.loads(out_json.read_text())["options"]) == {"firing", "attr", "spec"}


def test_safer_compare_reports_mismatched_pairs_and_bad_options(runs, capsys):
    bad = runs["attr"] / "eval" / SAFER / "seed-0.heldout.csv"
    bad.write_text(bad.read_text().replace("src:4,", "src:444,"))
    assert (
        main(["compare", str(runs["firing"]), "--option", f"attr={runs['attr']}", "--bootstrap", "20"]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("safer compare: error:") and str(bad) in err and "\n" not in err
    with pytest.raises(SystemExit):
        main(["compare", str(runs["firing"]), "--option", "no-equals-sign"])
    assert "LABEL=RUN_DIR" in capsys.readouterr().err
    assert main(["compare", str(runs["firing"]), "--option", f"firing={runs['attr']}"]) == 2
    assert "names the base label" in capsys.readouterr().err


# ---- runs in an older layout -----------------------------------------------------------------------------
def _written_by(run, version, stage, commit="0123abcd4567"):
    (run / "manifest.json").write_text(
        json.dumps(
            {"versions": {"safer-rm": version}, "stages": {stage: {"status": "done", "commit": commit}}}
        )
    )


def test_a_causal_test_in_the_flat_layout_names_the_version_that_wrote_it(runs, capsys):
    (runs["spec"] / "causal" / "results.json").write_text(json.dumps(CAUSAL_FLAT))
    _written_by(runs["spec"], "0.0.9", "causal")
    argv = ["compare", str(runs["firing"]), "--option", f"spec={runs['spec']}", "--bootstrap", "20"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"safer compare: error: {runs['spec']}: written by safer-rm 0.0.9 (commit 0123abcd4567) in an older "
        "layout (causal/results.json without 'scales'); rerun its causal stage with this version "
        f"(safer-rm {_version()})"
    )


def test_an_audit_in_an_older_layout_names_the_version_that_wrote_it(runs):
    from safer_rm.errors import StageError

    # planted ids not in the repeat's manifest (versions that read them from a column or an edits file)
    (runs["attr"] / "audit" / "repeat-0" / "manifest.json").write_text(json.dumps({"stages": {}}))
    _written_by(runs["attr"], "0.0.8", "audit")
    with pytest.raises(StageError, match=r"written by safer-rm 0\.0\.8 .*no planted ids in audit/repeat-0/"):
        _compare(runs)
    # the audit's pair scores in audit/scores/pairs.csv, no repeat folders
    shutil.rmtree(runs["attr"] / "audit" / "repeat-0")
    (runs["attr"] / "audit" / "scores").mkdir()
    (runs["attr"] / "audit" / "scores" / "pairs.csv").write_text("id,safer\n")
    with pytest.raises(StageError, match=r"older layout \(audit/scores/pairs\.csv\); rerun its audit stage"):
        _compare(runs)
    # audit/results.json with the headline AUROCs alone, no detectors; no manifest: an unknown version
    (runs["attr"] / "audit" / "results.json").write_text(json.dumps({"q": 10.0, "auroc_safer": 0.7}))
    (runs["attr"] / "manifest.json").unlink()
    with pytest.raises(StageError, match="written by an unknown safer-rm version in an older layout") as err:
        _compare(runs)
    assert "audit/results.json without 'detectors'" in str(err.value) and "\n" not in str(err.value)


def _version():
    from safer_rm import __version__

    return __version__
