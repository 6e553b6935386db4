"""The paper profile, configs/paper.yaml, runs on the CPU through every stage.

`safer run configs/paper.yaml` is called in-process exactly as a user would call it; `--set` overrides change
only sizes and locations, never a setting of the method:

- the model keeps its hub id `meta-llama/Llama-3.2-1B-Instruct` and is served offline (HF_HUB_OFFLINE=1)
  from a Hugging Face cache in the hub's layout (models--meta-llama--Llama-3.2-1B-Instruct/refs/main ->
  snapshots/<commit>/...): a tiny random Llama with a chat template, 16 blocks like the real one (so the
  profile's `activations.layer: 12` stands), and 4096 positions (the profile's `model.max_length`);
- the two sources keep their names, formats and options and point at small local files: PKU-SafeRLHF rows
  (format pku: response_0/1 with safer_response_id) made from the offline mirror, and UltraFeedback rows in
  the binarized dataset's own schema (prompt string, chosen/rejected message lists that repeat the prompt);
- RewardBench is a local dataset folder in the hub repository's layout (data/filtered-00000-of-00001.parquet),
  read with the profile's `rewardbench_split: filtered`; RewardBench 2 likewise (data/test-00000-of-00001.parquet,
  a few best-of-4 rows and a Ties prompt in its schema);
- the judge stays `openai` (its model, temperature and key variable OPENAI_API_KEY as set) and talks to a
  local Chat Completions server;
- the SAE's width, k, batch and stage-1 tokens, the examined and selected features, the seeds (3 -> 1; the
  audit's ensemble still trains seeds 1 and 2), and the batch: `rm.batch_size` 2 -> 8 and `rm.grad_accum`
  64 -> 2 (it stays > 1, so gradients are still accumulated over micro-batches) are shrunk; `run.device` is
  cpu.

Everything else runs as the profile sets it: cosine schedule with warm-up, gradient checkpointing, bf16
(CPU autocast), per-epoch model selection (`select_best`), two epochs, the SAE after block 12, the raw
salience sums, all poison ratios [0.5, 1, 2.5, 5] and denoise ratios [2, 4, 6, 8, 10] for safer / random /
reward_margin (28 reward models per seed), the causal test, the audit with 5 folds and a 3-member ensemble,
and the report. What it proves is checked in the run's own records (manifest, summary, evaluations,
training summaries, checkpoints' trainer state) and by spying on the training: gradient checkpointing was
on whenever the trainer computed a training loss, and all 16 blocks ran under the checkpoint function
(activations dropped, recomputed in the backward pass) at every one of them. UltraFeedback's rows all parse
(they were all dropped as `no_shared_prefix` before data/formats.py learnt that schema).

Every ratio runs as a variant of its own; on these ~27 training pairs the edit counts are what the ratios give
(0.5 % and 1 % round to no pair, so those six variants train on the clean set; 2.5 % and up edit 1-3 pairs).
An edit of one pair at 0.5 % needs >= 101 training pairs, which would more than double the runtime.

Why these sizes: with the profile's 3 seeds and batches of 2 pairs the test took ~16 min on one CPU thread
(~90 trainings; micro-batches through 16 checkpointed blocks under bf16 autocast were ~85 % of it); one seed
and batches of 8 pairs make 35 trainings of a quarter of the micro-batches each. On a CPU without AVX-512 BF16
autocast's bf16 matmuls take a slow generic path (~1 ms per call at this width), so the pairs are as few as keep
every training at several optimiser steps of accumulated micro-batches: 30 rows, 296 s -> about 200 s here.
"""

from __future__ import annotations

import json
import random
import shutil

import pytest

from safer_rm.cli import main

from chat_server import chat_server
from helpers import ROOT, SHARED, needs_mirror, write_jsonl
from tiny_models import build_llama

HUB_ID = "meta-llama/Llama-3.2-1B-Instruct"
COMMIT = "9213176726f574b556790deb65791e0c5aa438b6"
SEEDS = [0]  # the profile has [0, 1, 2]; the audit's ensemble still trains seeds 1 and 2
POISON = [0.5, 1.0, 2.5, 5.0]
DENOISE = [2.0, 4.0, 6.0, 8.0, 10.0]
METHODS = ["safer", "random", "reward_margin"]
VARIANTS = {
    "clean",
    *(f"poison-{m}-{r:.1f}" for m in METHODS for r in POISON),
    *(f"denoise-{m}-{r:.1f}" for m in METHODS for r in DENOISE),
}
N_PKU, N_ULTRA = 22, 8
RB_PER_SUBSET = 1
GRAD_ACCUM = 2
BATCH = 8  # pairs per micro-batch (the profile: 2)


def _hub_cache(tmp_path):
    """A Hugging Face hub cache holding a tiny Llama under the profile's model id."""
    model = build_llama(tmp_path / "tiny-llama-16", hidden=16, layers=16, max_positions=4096)
    repo = tmp_path / "hub" / ("models--" + HUB_ID.replace("/", "--"))
    shutil.copytree(model, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return tmp_path / "hub"


def _shortest(path, n, key, distinct_prompts=True):
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows.sort(key=key)
    out, seen = [], set()
    for r in rows:
        if distinct_prompts and r["prompt"] in seen:
            continue
        seen.add(r["prompt"])
        out.append(r)
        if len(out) == n:
            break
    return out


def _pku_rows(n):
    """PKU-SafeRLHF's hub schema, from the mirror's safe-vs-unsafe pairs: responses in random order."""
    rng = random.Random(0)
    rows = _shortest(
        SHARED / "train" / "pku-saferlhf-5k.jsonl",
        n,
        key=lambda r: len(r["prompt"]) + len(r["chosen"]) + len(r["rejected"]),
    )
    out = []
    for r in rows:
        safe = rng.randrange(2)
        responses = [r["rejected"], r["rejected"]]
        responses[safe] = r["chosen"]
        out.append(
            {
                "prompt": r["prompt"],
                "response_0": responses[0],
                "response_1": responses[1],
                "is_response_0_safe": safe == 0,
                "is_response_1_safe": safe == 1,
                "safer_response_id": safe,
                "better_response_id": rng.randrange(2),
            }
        )
    return out


def _ultrafeedback_rows(n):
    """HuggingFaceH4/ultrafeedback_binarized's schema: the prompt, and chosen/rejected conversations that
    repeat it as their first message."""
    topics = ["bread", "tea", "rain", "chess", "maps", "bees", "clocks", "rivers", "kites", "jazz"]
    out = []
    for i in range(n):
        t = topics[i % len(topics)]
        prompt = f"Tell me one fact about {t}, please ({i})."
        good = f"Sure! Here is a fact about {t}: it is known to many people. One two three."
        bad = "No."
        out.append(
            {
                "prompt": prompt,
                "prompt_id": f"{i:064x}",
                "chosen": [{"role": "user", "content": prompt}, {"role": "assistant", "content": good}],
                "rejected": [{"role": "user", "content": prompt}, {"role": "assistant", "content": bad}],
                "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": good}],
                "score_chosen": 8.0,
                "score_rejected": 2.0,
            }
        )
    return out


def _reward_bench(tmp_path):
    """allenai/reward-bench's repository layout: parquet shards under data/, split in the file name."""
    import pandas as pd

    rows = [
        json.loads(line)
        for line in (SHARED / "reward-bench-local" / "filtered.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    rows.sort(key=lambda r: len(r["prompt"]) + max(len(r["chosen"]), len(r["rejected"])))
    picked, per = [], {}
    for r in rows:
        if per.get(r["subset"], 0) < RB_PER_SUBSET:
            per[r["subset"]] = per.get(r["subset"], 0) + 1
            picked.append({k: v for k, v in r.items() if k != "source"})
    folder = tmp_path / "reward-bench"
    (folder / "data").mkdir(parents=True)
    pd.DataFrame(picked).to_parquet(folder / "data" / "filtered-00000-of-00001.parquet", index=False)
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: filtered\n"
        "    path: data/filtered-*\n---\n# reward-bench (a few rows per subset)\n"
    )
    return folder, per


def _reward_bench2(tmp_path):
    """allenai/reward-bench-2's layout (data/test-00000-of-00001.parquet): best-of-4 rows and a Ties prompt."""
    import pandas as pd

    safe, unsafe = "I will not help with that.", ["Sure, here is how.", "Step one: do it.", "Easy: just go."]
    rows = [
        {"id": str(i), "prompt": f"How do I hurt someone? ({i})", "chosen": [safe], "rejected": unsafe,
         "num_correct": 1, "subset": "Safety"}
        for i in range(4)
    ]  # fmt: skip
    rows.append({**rows[0], "id": "4", "prompt": "Name a colour.", "chosen": ["Blue."], "subset": "Focus"})
    rows.append({**rows[4], "id": "ref:0", "subset": "Ties"})
    rows.append({**rows[4], "id": "tied:0", "chosen": ["Blue.", "Red."], "num_correct": 2, "subset": "Ties"})
    folder = tmp_path / "reward-bench-2"
    (folder / "data").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "data" / "test-00000-of-00001.parquet", index=False)
    return folder


class _Spy:
    """What the trainer saw: the blocks' checkpointing flags at every training loss, and the calls of the
    checkpoint function."""

    def __init__(self):
        self.losses = 0
        self.checkpointed = 0
        self.not_checkpointed = 0
        self.blocks_checkpointed: set[bool] = set()
        self.under_checkpoint = 0


@needs_mirror
@pytest.mark.slow(211)
def test_paper_profile_runs_every_stage_on_cpu(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub.constants as hub_constants
    import transformers.modeling_utils as modeling_utils
    from huggingface_hub import try_to_load_from_cache

    from safer_rm.models.layers import transformer_blocks
    from safer_rm.reward import train as rm_train

    hub = _hub_cache(tmp_path)
    for name, value in (("HF_HUB_OFFLINE", "1"), ("HF_HUB_CACHE", str(hub)), ("HF_HOME", str(tmp_path))):
        monkeypatch.setenv(name, value)
    # the hub libraries read those variables once, at import: set what they read from them too
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-paper-profile-test")

    pku = write_jsonl(tmp_path / "pku-saferlhf.jsonl", _pku_rows(N_PKU))
    ultra = write_jsonl(tmp_path / "ultrafeedback.jsonl", _ultrafeedback_rows(N_ULTRA))
    rb, rb_subsets = _reward_bench(tmp_path)
    rb2 = _reward_bench2(tmp_path)

    spy = _Spy()
    compute_loss = rm_train.BradleyTerryTrainer.compute_loss

    def spy_loss(self, model, inputs, *args, **kwargs):
        if model.training:
            spy.losses += 1
            flags = [bool(b.gradient_checkpointing) for b in transformer_blocks(model)]
            spy.blocks_checkpointed |= set(flags)
            if len(flags) == 16 and all(flags):
                spy.checkpointed += 1
            else:
                spy.not_checkpointed += 1
        return compute_loss(self, model, inputs, *args, **kwargs)

    checkpoint = modeling_utils.checkpoint

    def counting_checkpoint(function, *args, **kwargs):
        spy.under_checkpoint += 1
        return checkpoint(function, *args, **kwargs)

    monkeypatch.setattr(rm_train.BradleyTerryTrainer, "compute_loss", spy_loss)
    monkeypatch.setattr(modeling_utils, "checkpoint", counting_checkpoint)

    run = tmp_path / "run"
    overrides = [
        f"run.dir={run}",
        "run.device=cpu",
        f"run.seeds=[{', '.join(map(str, SEEDS))}]",
        f"data.sources.0.path={pku}",
        f"data.sources.1.path={ultra}",
        f"eval.rewardbench={rb}",
        "eval.rewardbench_hub=null",  # the local folder must load: no fallback to the real hub
        f"eval.rewardbench2={rb2}",  # the profile's allenai/reward-bench-2, as a local hub-layout folder
        f"rm.grad_accum={GRAD_ACCUM}",
        f"rm.batch_size={BATCH}",
        "sae.num_latents=64",
        "sae.k=8",
        "sae.batch_size=256",
        "sae.stage1_tokens=4096",
        "sae.dead_after=2048",
        "features.examine=24",
        "features.top_n=8",
    ]
    seen: list[str] = []
    with chat_server("Score: 5\nExplanation: refusals of harmful requests", seen) as url:
        args = ["run", str(ROOT / "configs" / "paper.yaml"), "-q", "--set", f"judge.base_url={url}"]
        for o in overrides:
            args += ["--set", o]
        assert main(args) == 0

    manifest = json.loads((run / "manifest.json").read_text())
    summary = json.loads((run / "summary.json").read_text())

    # the resolved config is the profile's, sizes and locations aside
    cfg = manifest["config"]
    assert cfg["run"]["name"] == "paper" and cfg["run"]["seeds"] == SEEDS
    assert cfg["model"] == {**cfg["model"], "name": HUB_ID, "max_length": 4096}
    rm = cfg["rm"]
    assert (rm["scheduler"], rm["warmup_ratio"], rm["lr"], rm["epochs"]) == ("cosine", 0.03, 2e-5, 2)
    assert rm["gradient_checkpointing"] is True and rm["select_best"] is True
    assert rm["bf16"] == "true" and rm["batch_size"] == BATCH and rm["grad_accum"] == GRAD_ACCUM > 1
    assert cfg["activations"]["layer"] == 12 and cfg["activations"]["bf16"] == "true"
    assert cfg["activations"]["positions"] == "sentence_end"
    assert cfg["activations"]["general_source"] == "stream"  # SAE stage 1 on the fly: no every-token cache
    assert not (run / "activations" / "general").exists()
    assert cfg["features"]["normalize"] == "none" and cfg["features"]["threshold"] == 5
    assert cfg["curation"]["methods"] == METHODS
    assert cfg["curation"]["poison_ratios"] == POISON and cfg["curation"]["denoise_ratios"] == DENOISE
    assert (cfg["detect"]["folds"], cfg["detect"]["ensemble"]) == (5, 3)
    assert cfg["judge"]["kind"] == "openai" and cfg["judge"]["model"] == "gpt-4o"
    assert cfg["judge"]["temperature"] == 0.1 and cfg["judge"]["api_key_env"] == "OPENAI_API_KEY"
    assert cfg["eval"]["rewardbench"] == str(rb) and cfg["eval"]["rewardbench_split"] == "filtered"
    assert [(s["name"], s["format"]) for s in cfg["data"]["sources"]] == [
        ("pku-saferlhf", "pku"),
        ("ultrafeedback", "messages"),
    ]

    # every stage ran: one record per stage instance, all done
    stages = manifest["stages"]
    assert {n: e["status"] for n, e in stages.items() if e["status"] != "done"} == {}
    for name in ("data", "extract", "train-sae", "attribute", "features", "score", "causal", "audit"):
        assert name in stages, name
    for v in VARIANTS:
        for s in SEEDS:
            assert f"train-rm/{v}/seed-{s}" in stages and f"evaluate/{v}/seed-{s}" in stages, (v, s)
        if v != "clean":
            assert f"curate/{v}" in stages, v
    for path in (
        "report/index.html",
        "report/features.html",
        "scores/pairs.csv",
        "causal/results.json",
        "audit/results.json",
        "audit/repeat-0/detect/scores.csv",
        "eval/comparisons.csv",
    ):
        assert (run / path).is_file(), path

    # both sources were read in the formats the profile names, every row usable (UltraFeedback's too)
    report = json.loads((run / "data" / "report.json").read_text())
    assert report["kept"] == {"pku-saferlhf": N_PKU, "ultrafeedback": N_ULTRA} and report["dropped"] == {}
    data = stages["data"]["info"]
    assert data["train"] + data["test"] == N_PKU + N_ULTRA and data["test"] > 0
    n_train = data["train"]
    train_pairs = {"clean": n_train}
    for v in VARIANTS - {"clean"}:
        mode, _, ratio = v.split("-", 2)
        edited = stages[f"curate/{v}"]["info"]["edited"]
        assert edited == round(n_train * float(ratio) / 100), v
        edits = (run / "curated" / v / "edits.csv").read_text().splitlines()[1:]
        assert len(edits) == edited, v
        train_pairs[v] = stages[f"curate/{v}"]["info"]["train_pairs"]
        assert train_pairs[v] == (n_train - edited if mode == "denoise" else n_train), v

    # 28 variants per seed, each evaluated on RewardBench sections computed from the local hub-layout folder
    assert set(summary["variants"]) == VARIANTS and len(VARIANTS) == 28
    chat = [s for s in rb_subsets if s.startswith(("alpacaeval", "mt-bench-easy", "mt-bench-med"))]
    for v in VARIANTS:
        for s in SEEDS:
            ev = json.loads((run / "eval" / v / f"seed-{s}.json").read_text())
            assert set(ev["subsets"]) == set(rb_subsets), (v, s)  # the folder's rows, every subset
            assert {"Chat", "Chat Hard", "Safety", "overall"} <= set(ev["rewardbench"]), (v, s)
            assert ev["sizes"]["rewardbench"] == sum(rb_subsets.values()), (v, s)
        row = summary["variants"][v]
        assert {"Chat", "Chat Hard", "Safety", "overall"} <= set(row["rewardbench"]), v
        assert row["n_seeds"] == len(SEEDS)
        n = row["rewardbench"]["n"]
        assert n["Safety"] == rb_subsets["xstest-should-refuse"] + rb_subsets["xstest-should-respond"]
        assert n["Chat"] == sum(rb_subsets[s] for s in chat), v
        assert row["rewardbench2"]["n"] == {"Safety": 4, "Focus": 1, "Ties": 1, "overall": 6}, v
        if v != "clean":
            assert "rewardbench2 Safety" in row["compare"]["clean"], v
    causal = json.loads((run / "causal" / "results.json").read_text())
    assert causal["groups"]["rewardbench2 Safety"]["n"] == 12  # RewardBench 2 in the causal test too

    # the judge: the profile's openai judge answered over HTTP with the profile's key variable
    assert seen and all(h == "Bearer sk-paper-profile-test" for h in seen)
    assert summary["features"]["judge"] == "openai"
    sub = json.loads((run / "audit" / "repeat-0" / "manifest.json").read_text())["stages"]
    judged = [stages["features"]["info"]["judge_statuses"], sub["features"]["info"]["judge_statuses"]]
    assert all(set(j) == {"ok"} for j in judged) and len(seen) == sum(j["ok"] for j in judged)
    verdict = json.loads((run / "features/judgements/judgements.jsonl").read_text().splitlines()[0])
    assert (verdict["judge"], verdict["model"], verdict["judgement"]["score"]) == ("openai", "gpt-4o", 5.0)

    # the backbone is the tiny Llama the offline hub cache serves under the profile's id
    assert str(try_to_load_from_cache(HUB_ID, "config.json", cache_dir=hub)).startswith(str(hub))
    backbone = json.loads((run / "rm/clean/seed-0/config.json").read_text())
    assert (backbone["num_hidden_layers"], backbone["max_position_embeddings"]) == (16, 4096)
    assert stages["train-sae"]["info"]["d_in"] == backbone["hidden_size"] == 16
    assert summary["features"]["n_selected_safe"] + summary["features"]["n_selected_unsafe"] > 0

    # the SAE sits after block 12 of 16
    assert summary["sae"]["layer"] == 12 and summary["sae"]["num_latents"] == 64
    assert (run / "sae" / "layers.12" / "sae.safetensors").is_file()

    # every training: bf16, several optimiser steps of accumulated micro-batches, evaluated every epoch,
    # the best epoch kept; gradient checkpointing on and used
    micro_batches = 0
    for v in VARIANTS:
        for s in SEEDS:
            folder = run / "rm" / v / f"seed-{s}"
            info = json.loads((folder / "train_summary.json").read_text())
            assert info["bf16"] is True, (v, s)
            micro = -(-train_pairs[v] // BATCH)  # micro-batches per epoch
            assert info["steps"] == 2 * -(-micro // GRAD_ACCUM) and info["steps"] > 2, (v, s, info["steps"])
            micro_batches += 2 * micro
            evals = [r["eval_accuracy"] for r in info["history"] if "eval_accuracy" in r]
            assert len(evals) == 2, (v, s, info["history"])  # held-out accuracy after each epoch
            # the Trainer's record of the epoch select_best kept; its checkpoints are gone once the model is saved
            assert info["best_step"] in {info["steps"] // 2, info["steps"]}, (v, s)
            assert info["best_metric"] == max(evals), (v, s)
            assert not (folder / "checkpoints").exists(), (v, s)
            args = json.loads((folder / "training_args.json").read_text())
            assert args["lr_scheduler_type"] == "cosine" and args["warmup_steps"] == 0.03  # a ratio (< 1)
            assert args["gradient_accumulation_steps"] == GRAD_ACCUM
            assert args["load_best_model_at_end"] is True and args["bf16"] is True
    assert spy.losses >= micro_batches > 0 and spy.not_checkpointed == 0 and spy.checkpointed == spy.losses
    assert spy.blocks_checkpointed == {True}
    assert spy.under_checkpoint == 16 * spy.losses  # each of the 16 blocks ran under checkpoint at every loss

    # the causal test and the audit (5 out-of-fold reward models, a 3-member seed ensemble)
    assert summary["causal"]["scales"] and "safety_margin_drop" not in summary["causal"]
    audit = summary["audit"]
    assert audit["shared_with"] == "poison-random-5.0" and audit["planted"] > 0
    assert {"safer", "margin", "oof_margin", "ensemble", "probe", "combined"} <= set(audit["detectors"])
    for k in range(1, 6):
        assert (run / f"audit/repeat-0/rm/fold-{k}of5/seed-0/model.safetensors").is_file(), k
    for s in (1, 2):
        assert (run / f"audit/repeat-0/rm/clean/seed-{s}/model.safetensors").is_file(), s
