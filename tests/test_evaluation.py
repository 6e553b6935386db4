"""Evaluation beyond RewardBench: the evaluation pool (never a training prompt), `eval.extra` sets in any loader
format reported as their own sections everywhere, scoring each text once, and the reproducible setting."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import yaml

from safer_rm.cli import main
from safer_rm.data import DropReport, SourceConfig, load_source, read_pairs
from safer_rm.data.pool import build_pool
from safer_rm.models import Renderer, load_reward_model, load_tokenizer
from safer_rm.reward.scoring import score_encoded

from helpers import evaluation_only, pairs_from, separable_rows, toy_config, write_jsonl


def _pool_sources(tmp_path):
    rows = separable_rows(40)
    write_jsonl(tmp_path / "a.jsonl", rows)
    # an evaluation-only source: half its prompts are training prompts of `a` (with other answers)
    other = [{**r, "chosen": r["chosen"] + " Indeed.", "rejected": r["rejected"] + " No."} for r in rows[:10]]
    other += [
        {"prompt": f"Unrelated question {i}?", "chosen": "A careful answer.", "rejected": "x"}
        for i in range(10)
    ]
    write_jsonl(tmp_path / "b.jsonl", other)
    a = SourceConfig(name="a", path=str(tmp_path / "a.jsonl"))
    b = SourceConfig(name="b", path=str(tmp_path / "b.jsonl"), kind="chat")
    return a, b


def test_pool_never_contains_a_training_prompt(tmp_path):
    a, b = _pool_sources(tmp_path)
    pairs = load_source(a, "", DropReport())
    train, test = pairs[:20], pairs[20:25]
    pool = build_pool([a, b], "", train, test, max_per_source=None, seed=0)
    train_prompts = {p.prompt_key() for p in train}
    assert pool.pairs and not any(p.prompt_key() in train_prompts for p in pool.pairs)
    assert not {p.id for p in train} & {p.id for p in pool.pairs}
    # the held-out pairs are part of the pool; unused pairs of the source and the new prompts of `b` too
    assert {p.id for p in test} <= {p.id for p in pool.pairs}
    assert pool.info["by_source"] == {"a": 20, "b": 10}
    assert pool.info["excluded"] == {"a: in training": 20, "b: prompt in training": 10}
    # a cap keeps every held-out pair and fills up with a seeded sample
    capped = build_pool([a, b], "", train, test, max_per_source=8, seed=0)
    ids = [p.id for p in capped.pairs]
    assert {p.id for p in test} <= set(ids) and capped.info["by_source"] == {"a": 8, "b": 8}
    assert ids == [p.id for p in build_pool([a, b], "", train, test, 8, seed=0).pairs]
    assert ids != [p.id for p in build_pool([a, b], "", train, test, 8, seed=1).pairs]


def _hh(row):
    return {
        "chosen": f"\n\nHuman: {row['prompt']}\n\nAssistant: {row['chosen']}",
        "rejected": f"\n\nHuman: {row['prompt']}\n\nAssistant: {row['rejected']}",
    }


def test_pool_and_extra_sets_in_every_table(tmp_path, tiny_bert):
    cfg_path = toy_config(tmp_path, tiny_bert)
    cfg = yaml.safe_load(open(cfg_path))
    rows = separable_rows(60, seed=3)
    # an extra set in RewardBench schema (sections by subset) and one in HH transcript format (one accuracy)
    write_jsonl(
        tmp_path / "mybench.jsonl",
        [
            {**r, "subset": s, "id": i}
            for i, (r, s) in enumerate(zip(rows[:20], ["donotanswer", "mt-bench-easy"] * 10))
        ],
    )
    write_jsonl(tmp_path / "harmless.jsonl", [_hh(r) for r in rows[20:44]])
    write_jsonl(tmp_path / "extra-pool.jsonl", rows[44:])
    cfg["data"]["sources"][0]["max_pairs"] = 24  # leaves unused pairs of the source for the pool
    cfg["eval"].update(
        pool=True,
        pool_sources=[{"name": "more", "path": "${root}/extra-pool.jsonl", "kind": "safety"}],
        extra=[str(tmp_path / "mybench.jsonl"), {"name": "harmless", "path": "${root}/harmless.jsonl"}],
    )
    evaluation_only(cfg_path, cfg)
    assert main(["run", cfg_path, "-q", "--stages", "evaluate/*"]) == 0
    run = tmp_path / "run"

    train_prompts = {p.prompt_key() for p in read_pairs(run / "data" / "train.jsonl")}
    pool = read_pairs(run / "pool" / "pairs.jsonl")
    assert pool and not any(p.prompt_key() in train_prompts for p in pool)
    assert {p.source for p in pool} >= {"safety", "more"}

    ev = json.loads((run / "eval" / "clean" / "seed-0.json").read_text())
    assert {"mybench Safety", "mybench Chat", "harmless", "pool safety"} <= set(ev["columns"])
    assert ev["columns"]["mybench Safety"]["n"] == 10 and ev["columns"]["harmless"]["n"] == 24
    assert ev["sizes"]["pool"] == len(pool)
    for name in ("rewardbench", "heldout", "pool", "mybench", "harmless"):
        assert (run / "eval" / "clean" / f"seed-0.{name}.csv").is_file(), name

    assert main(["report", cfg_path, "-q", "--markdown", str(tmp_path / "results.md")]) == 0
    summary = json.loads((run / "summary.json").read_text())
    # the results as Markdown, generated from the run: provenance, every column, the differences
    md = (tmp_path / "results.md").read_text()
    assert md == (run / "report" / "results.md").read_text()
    assert f"Regenerate: `safer report {cfg_path} -q --markdown {tmp_path / 'results.md'}`" in md
    assert "- commit: " in md and "- machine: " in md and "bf16 off" in md and "- seeds: 0 " in md
    assert "| variant | mode | method | ratio | seeds | Chat |" in md
    for label in ("mybench Safety", "harmless", "pool safety"):
        assert (
            f" {label} |" in md.split("## Differences")[0] and f" {label} |" in md.split("## Differences")[1]
        )
    clean_line = next(line for line in md.splitlines() if line.startswith("| clean |"))
    clean = summary["variants"]["clean"]
    low, high = clean["interval"]["Safety"]
    assert f"{clean['rewardbench']['Safety']:.3f} [{low:.3f}, {high:.3f}]" in clean_line, clean_line
    assert "| poison-random-10.0 | clean |" in md
    clean, poisoned = summary["variants"]["clean"], summary["variants"]["poison-random-10.0"]
    assert clean["pool"]["n"]["safety"] == ev["columns"]["pool safety"]["n"]
    assert set(clean["extra"]) >= {"mybench Safety", "harmless"}
    assert set(poisoned["compare"]["clean"]) >= {"mybench Safety", "harmless", "pool safety", "Safety"}
    html = (run / "report" / "index.html").read_text()
    csv_text = (run / "report" / "results.csv").read_text()
    header = csv_text.splitlines()[0]
    for label in ("mybench Safety", "harmless", "pool safety"):
        assert label in html and f"{label} - clean" in header
    assert (run / "report" / "poison_harmless.png").is_file()
    assert (run / "report" / "poison_pool_safety.png").is_file()

    # a report under other evaluation settings shows no evaluation made with the old ones, nor their plots
    assert main(["report", cfg_path, "-q", "--set", "eval.extra=[]"]) == 0
    assert json.loads((run / "summary.json").read_text())["variants"] == {}
    assert not (run / "report" / "poison_harmless.png").exists()
    # the bootstrap size changes intervals only: nothing is stale
    assert main(["report", cfg_path, "-q", "--set", "eval.bootstrap=500"]) == 0
    again = json.loads((run / "summary.json").read_text())["variants"]
    assert set(again) == set(summary["variants"]) and again["clean"]["n"] == clean["n"]


def test_a_repeated_text_is_scored_once_with_the_same_reward(tiny_bert):
    tok = load_tokenizer(str(tiny_bert))
    model = load_reward_model(str(tiny_bert), tok).eval()
    renderer = Renderer(tok, 48)
    pairs = pairs_from(separable_rows(6))
    chosen, rejected = renderer.encode_pairs(pairs)
    texts = chosen + rejected
    calls = []
    handle = model.register_forward_hook(lambda m, i, o: calls.append(o.logits.shape[0]))
    once = score_encoded(model, texts, tok.pad_token_id, batch_size=4, progress=False)
    calls.clear()
    twice = score_encoded(model, texts + texts[:5], tok.pad_token_id, batch_size=4, progress=False)
    handle.remove()
    assert sum(calls) == len(texts)
    np.testing.assert_array_equal(twice[: len(texts)], once)
    np.testing.assert_array_equal(twice[len(texts) :], once[:5])


def test_reproducible_setting_gives_identical_scores_in_two_processes(tmp_path, tiny_bert):
    """rm.bf16=false and a fixed thread count: two processes train and evaluate bit for bit alike."""
    outs = []
    for name in ("one", "two"):
        base = tmp_path / name
        base.mkdir()
        cfg = toy_config(base, tiny_bert)
        cmd = [
            sys.executable,
            "-m",
            "safer_rm.cli",
            "evaluate",
            cfg,
            "-q",
            "--set",
            "run.threads=1",
            "--set",
            "rm.bf16=false",
        ]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
        outs.append(base / "run")
    for rel in (
        "eval/clean/seed-0.rewardbench.csv",
        "eval/clean/seed-0.heldout.csv",
        "rm/clean/seed-0/model.safetensors",
    ):
        assert (outs[0] / rel).read_bytes() == (outs[1] / rel).read_bytes(), rel
    margins = (outs[0] / "eval/clean/seed-0.rewardbench.csv").read_text().splitlines()
    assert len(margins) > 2 and len({line.rsplit(",", 1)[1] for line in margins[1:]}) > 1  # not constant
