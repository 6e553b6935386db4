"""A corpus of bad inputs: every case must give a one-line error that names what is wrong and where, exit
code 2 from the CLI, no traceback, and leave no finished artifact written or altered."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from safer_rm.cli import main

from chat_server import chat_server
from helpers import toy_config


def _cfg(tmp_path) -> dict:
    return yaml.safe_load(open(tmp_path / "toy.yaml"))


def _write(tmp_path, cfg: dict) -> str:
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(cfg))
    return str(tmp_path / "toy.yaml")


def _strict(tmp_path, cfg):
    cfg["data"]["strict"] = True
    return cfg


def _rows(n=3):
    return [{"prompt": f"p{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(n)]


def _data(body: bytes | str, name="safety.jsonl", strict=False):
    """A case that replaces the safety source's file."""

    def setup(tmp_path):
        cfg = _cfg(tmp_path)
        path = tmp_path / name
        path.write_bytes(body if isinstance(body, bytes) else body.encode())
        cfg["data"]["sources"][0]["path"] = str(path)
        cfg["data"]["sources"][0].pop("format", None)
        return _strict(tmp_path, cfg) if strict else cfg

    return setup


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _set(key: str, value):
    def setup(tmp_path):
        cfg = _cfg(tmp_path)
        target = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            target = target.setdefault(p, {}) if not p.isdigit() else target[int(p)]
        target[parts[-1]] = value
        return cfg

    return setup


def _gz_truncated() -> bytes:
    raw = gzip.compress(_jsonl(_rows(3000)).encode())
    return raw[: len(raw) // 2]


FRESH = [  # (case id, setup, expected words in the one-line error)
    ("invalid-json-line", _data(_jsonl(_rows(2)) + '{"prompt": oops}\n'), ["safety.jsonl:3", "invalid JSON"]),
    ("truncated-gzip", _data(_gz_truncated(), "safety.jsonl.gz"), ["safety.jsonl.gz", "truncated gzip"]),
    (
        "missing-field",
        _data(_jsonl([*_rows(2), {"prompt": "p", "chosen": "c"}]), strict=True),
        ["safety.jsonl:3", "field 'rejected'", "missing_field"],
    ),
    (
        "mistyped-field",
        _data(_jsonl([*_rows(2), {"prompt": "p", "chosen": 7, "rejected": "r"}]), strict=True),
        ["safety.jsonl:3", "field 'chosen'", "wrong_type"],
    ),
    (
        "empty-response",
        _data(_jsonl([{"prompt": "p", "chosen": " ", "rejected": "r"}]), strict=True),
        ["safety.jsonl:1", "field 'chosen'", "empty_response"],
    ),
    (
        "identical-responses",
        _data(_jsonl([*_rows(1), {"prompt": "p", "chosen": "x", "rejected": "x"}]), strict=True),
        ["safety.jsonl:2", "identical_sides"],
    ),
    (
        "non-utf8",
        _data(b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'),
        ["safety.jsonl:1", "not UTF-8"],
    ),
    (
        "10mb-text",
        _data(_jsonl([{"prompt": "p", "chosen": "x" * 10_000_000, "rejected": "r"}]), strict=True),
        ["safety.jsonl:1", "field 'chosen'", "too_long"],
    ),
    (
        "unknown-format",
        _data(_jsonl([{"question": "q", "answer": "a"}])),
        ["safety.jsonl:1", "unknown format"],
    ),
    ("empty-file", _data(""), ["safety.jsonl", "empty file"]),
    (
        "csv-wrong-header",
        _data("question,answer\nq,a\n", "safety.csv"),
        ["safety.csv:2", "unknown format", "question, answer"],
    ),
    ("json-not-rows", _data("42", "safety.json"), ["safety.json", "list of rows"]),
    ("parquet-garbage", _data(b"PAR1 not really", "safety.parquet"), ["safety.parquet", "parquet"]),
    ("unknown-extension", _data("hello", "safety.txt"), ["safety.txt", "unknown file type"]),
    ("row-not-object", _data(_jsonl([[1, 2]]), strict=True), ["safety.jsonl:1"]),
    (
        "hh-without-assistant",
        _data(
            _jsonl([{"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi"}]), strict=True
        ),
        ["safety.jsonl:1", "field 'rejected'", "no_shared_prefix"],
    ),
    (
        "pku-bad-id",
        _data(
            _jsonl([{"prompt": "p", "response_0": "a", "response_1": "b", "safer_response_id": 2}]),
            strict=True,
        ),
        ["safety.jsonl:1", "field 'safer_response_id'"],
    ),
    (
        "messages-bad-role",
        _data(
            _jsonl(
                [
                    {
                        "chosen": [{"role": "wizard", "content": "x"}],
                        "rejected": [{"role": "assistant", "content": "y"}],
                    }
                ]
            ),
            strict=True,
        ),
        ["safety.jsonl:1", "field 'chosen.0'"],
    ),
    (
        "missing-data-file",
        _set("data.sources.0.path", "/nonexistent/safety.jsonl"),
        ["/nonexistent/safety.jsonl", "not found"],
    ),
    (
        "format-override-mismatch",
        lambda t: _strict(t, _set("data.sources.0.format", "pku")(t)),
        ["safety.jsonl:1", "field 'response_0'"],
    ),
    ("unknown-key", _set("rm.epoch", 1), ["'rm.epoch'", "did you mean 'epochs'"]),
    ("wrong-type", _set("rm.epochs", "many"), ["'rm.epochs'", "expected a number"]),
    ("negative-ratio", _set("curation.poison_ratios", [-1.0]), ["'curation.poison_ratios.0'", "percent"]),
    ("ratio-over-100", _set("curation.denoise_ratios", [150.0]), ["'curation.denoise_ratios.0'", "percent"]),
    ("missing-model", _set("model.name", ""), ["'model.name'", "required"]),
    ("model-path-missing", _set("model.name", "/nonexistent/model"), ["/nonexistent/model", "not found"]),
    ("unknown-section", _set("optimizer", {"lr": 1}), ["'optimizer'", "unknown key"]),
    ("test-fraction", _set("data.test_fraction", 1.5), ["'data.test_fraction'"]),
    ("bad-literal", _set("activations.positions", "everywhere"), ["'activations.positions'", "sentence_end"]),
    ("audit-ratio-zero", _set("audit.ratio", 0.0), ["'audit.ratio'"]),
    ("source-without-path", _set("data.sources.0.path", ""), ["'data.sources.0.path'"]),
    (
        "source-name-escapes",
        _set("data.sources.0.name", "../../evil"),
        ["'data.sources.0.name'", "plain name"],
    ),
    ("run-name-with-slash", _set("run.name", "a/b"), ["'run.name'"]),
    ("sae-k-over-latents", _set("sae.k", 500), ["'sae.k'"]),
    ("labels-judge-without-file", _set("judge.kind", "labels"), ["'judge.labels_path'"]),
    ("extra-set-named-like-a-section", _set("eval.extra", ["sets/Safety.jsonl"]), ["'eval.extra'", "safety"]),
    ("extra-sets-same-name", _set("eval.extra", ["a/x.jsonl", "b/X.jsonl"]), ["'eval.extra'", "unique"]),
    ("extra-set-file-missing", _set("eval.extra", ["/nonexistent/mine.jsonl"]), ["/nonexistent/mine.jsonl"]),
    ("bootstrap-too-small", _set("eval.bootstrap", 5), ["'eval.bootstrap'"]),
    ("one-fold", _set("detect.folds", 1), ["'detect.folds'", ">= 2"]),
    ("unknown-detector", _set("inspect.detector", "vibes"), ["'inspect.detector'", "oof_margin"]),
    ("remove-everything", _set("inspect.remove", 100.0), ["'inspect.remove'"]),
    ("audit-repeats-zero", _set("audit.repeats", 0), ["'audit.repeats'"]),
    ("duplicate-seeds", _set("run.seeds", [1, 1]), ["'run.seeds'", "differ"]),
    (
        "existing-rm-missing",
        _set("model.reward_model", "/nonexistent/rm"),
        ["/nonexistent/rm", "not found"],
    ),
]


def _assert_one_line_exit_2(capsys, rc: int, words: list[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    return err


@pytest.mark.parametrize("case,setup,words", FRESH, ids=[c[0] for c in FRESH])
def test_bad_input_on_a_fresh_run(case, setup, words, tmp_path, tiny_bert, capsys):
    toy_config(tmp_path, tiny_bert)
    cfg = _write(tmp_path, setup(tmp_path))
    rc = main(["run", cfg, "-q"])
    _assert_one_line_exit_2(capsys, rc, words)
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text()) if (run / "manifest.json").is_file() else {}
    assert not [n for n, s in manifest.get("stages", {}).items() if s.get("status") == "done"]
    assert not (run / "data" / "train.jsonl").exists() and not (run / "rm").exists()


def test_config_file_problems(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("rm:\n  lr: [1,\n")
    _assert_one_line_exit_2(
        capsys, main(["run", str(tmp_path / "bad.yaml")]), ["bad.yaml", "invalid YAML line"]
    )
    _assert_one_line_exit_2(capsys, main(["run", str(tmp_path / "none.yaml")]), ["none.yaml", "not found"])
    _assert_one_line_exit_2(capsys, main(["run", "--set", "rm.lr"]), ["rm.lr", "key=value"])


# ---- cases on a finished run: models, SAEs, judge replies --------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_bert):
    root = tmp_path_factory.mktemp("finished")
    cfg = toy_config(root, tiny_bert)
    assert main(["run", cfg, "-q"]) == 0
    return root


def _artifacts(run: Path) -> dict[str, int]:
    return {
        str(p.relative_to(run)): p.stat().st_mtime_ns
        for p in run.rglob("*")
        if p.is_file()
        and p.name not in ("manifest.json", "log.txt")
        and not {"report", "locks"} & set(p.parts)
    }


@pytest.fixture
def run_copy(finished_run, tmp_path):
    shutil.copytree(finished_run, tmp_path / "w")
    root = tmp_path / "w"
    cfg = yaml.safe_load(open(root / "toy.yaml"))
    cfg["run"]["dir"] = str(root / "run")
    return root, cfg


def _rerun(root: Path, cfg: dict, command: str, capsys, words: list[str], *extra: str):
    (root / "toy.yaml").write_text(yaml.safe_dump(cfg))
    before = _artifacts(root / "run")
    rc = main([command, str(root / "toy.yaml"), "-q", *extra])
    _assert_one_line_exit_2(capsys, rc, words)
    after = _artifacts(root / "run")
    assert {k: v for k, v in after.items() if k in before} == before  # nothing finished was altered


def test_model_folder_without_config(run_copy, capsys):
    root, cfg = run_copy
    (root / "notamodel").mkdir()
    cfg["model"]["name"] = str(root / "notamodel")
    _rerun(root, cfg, "train-rm", capsys, ["notamodel", "not a model folder"])


def test_pickle_only_model_is_refused(run_copy, tiny_bert, capsys):
    root, cfg = run_copy
    target = root / "pickled"
    shutil.copytree(tiny_bert, target)
    (target / "model.safetensors").unlink()
    (target / "pytorch_model.bin").write_bytes(b"not loaded")
    cfg["model"]["name"] = str(target)
    _rerun(root, cfg, "train-rm", capsys, ["pickled", "pickle", "--allow-pickle"])
    cfg["model"]["name"] = str(target / "pytorch_model.bin")
    _rerun(root, cfg, "train-rm", capsys, ["pytorch_model.bin", "pickle weight file refused"])


def _other_sae(root: Path, width: int, layer: int) -> Path:
    from safer_rm.sae import SAEConfig, SAEMeta, TopKSAE, hookpoint_for, save_sae

    out = root / f"sae-w{width}-l{layer}"
    save_sae(
        TopKSAE.create(width, SAEConfig(num_latents=64, k=4)),
        out,
        hookpoint_for(layer),
        SAEMeta(layer=layer, position_policy="response"),
    )
    return out


def test_sae_of_wrong_width(run_copy, capsys):
    root, cfg = run_copy
    cfg["sae"]["path"] = str(_other_sae(root, 48, 1))
    _rerun(root, cfg, "train-sae", capsys, ["sae-w48-l1", "width 48 but layer has 32"])


def test_sae_from_another_layer(run_copy, capsys):
    root, cfg = run_copy
    cfg["sae"]["path"] = str(_other_sae(root, 32, 2) / "layers.2")
    _rerun(root, cfg, "train-sae", capsys, ["layers.2", "layer 2", "layer 1"])


def test_sae_path_missing(run_copy, capsys):
    root, cfg = run_copy
    cfg["sae"]["path"] = str(root / "no-sae")
    _rerun(root, cfg, "train-sae", capsys, ["no-sae", "no SAE folder"])


@pytest.mark.parametrize(
    "reply,words",
    [
        ("I would say it is quite safety related, maybe.", ["no usable verdict", "unparseable"]),
        ("Score: 9\nExplanation: very unsafe", ["no usable verdict", "unparseable"]),
        ("", ["no usable verdict"]),
    ],
)
def test_judge_replies_that_cannot_be_used(run_copy, capsys, monkeypatch, reply, words):
    root, cfg = run_copy
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-test")
    with chat_server(reply) as url:
        cfg["judge"] = {
            "kind": "openai",
            "model": "m",
            "base_url": url,
            "api_key_env": "TEST_JUDGE_KEY",
            "max_retries": 0,
            "timeout": 5,
        }
        _rerun(root, cfg, "features", capsys, ["judge openai", *words])


def test_labels_file_with_bad_score(run_copy, capsys):
    root, cfg = run_copy
    (root / "labels.csv").write_text("latent,score\n3,5\n4,eleven\n")
    cfg["judge"] = {"kind": "labels", "labels_path": str(root / "labels.csv")}
    _rerun(root, cfg, "features", capsys, ["labels.csv:3", "score"])


def test_subprocess_has_no_traceback_unless_debug(tmp_path, tiny_bert):
    cfg = toy_config(tmp_path, tiny_bert)
    base = [sys.executable, "-m", "safer_rm.cli", "run", cfg, "--set", "rm.epochs=-1"]
    quiet = subprocess.run(base, capture_output=True, text=True)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr and "'rm.epochs'" in quiet.stderr
    loud = subprocess.run([*base, "--debug"], capture_output=True, text=True)
    assert "Traceback" in loud.stderr


def test_corpus_size():
    # 35 fresh-run cases + 3 config-file cases + 2 model + 3 SAE + 3 judge replies + 1 labels file
    assert len(FRESH) + 3 + 2 + 3 + 3 + 1 >= 40
