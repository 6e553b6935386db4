from __future__ import annotations

import pytest

from safer_rm.config import Config, load_config
from safer_rm.data.config import DataConfig
from safer_rm.errors import ConfigError
from safer_rm.typed_config import field_help, set_path


def test_yaml_then_set_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "run: {name: x}\nrm: {lr: 1.0e-4, epochs: 1}\n"
        "data:\n  sources:\n    - {name: a, path: a.jsonl}\n    - {name: b, path: b.jsonl, kind: chat}\n"
    )
    cfg = load_config(
        path, ["rm.lr=3e-5", "data.sources.1.weight=2.5", "model.max_length=64", "run.seeds=[1, 2]"]
    )
    assert cfg.rm.lr == 3e-5 and cfg.rm.epochs == 1.0
    assert cfg.data.sources[1].weight == 2.5 and cfg.data.sources[1].kind == "chat"
    assert cfg.model.max_length == 64 and cfg.run.seeds == [1, 2]
    assert str(cfg.run.path) == "runs/x"


@pytest.mark.parametrize(
    "text,key,msg",
    [
        ("rm: {lrr: 1}\n", "rm.lrr", "did you mean 'lr'"),
        ("rm: {epochs: many}\n", "rm.epochs", "expected a number"),
        ("model: {max_length: 1.5}\n", "model.max_length", "expected an integer"),
        ("model: {template: fancy}\n", "model.template", "must be one of auto, chat, plain"),
        ("data: {test_fraction: 1.5}\n", "data.test_fraction", "must be in [0, 1)"),
        (
            "data:\n  sources:\n    - {name: a, weight: -1, path: x}\n",
            "data.sources.0.weight",
            "must be >= 0",
        ),
        ("data:\n  sources:\n    - {path: x}\n", "data.sources.0", "missing"),
        ("bogus: 1\n", "bogus", "unknown key"),
        ("rm: {batch_size: 0}\n", "rm.batch_size", "must be >= 1, got 0"),
        ("rm: {lr: 0}\n", "rm.lr", "must be > 0, got 0"),
        ("sae: {stage1_lr: -1}\n", "sae.stage1_lr", "must be > 0, got -1"),
        ("sae: {auxk_alpha: -0.5}\n", "sae.auxk_alpha", "must be >= 0, got -0.5"),
        ("features: {min_contexts: -1}\n", "features.min_contexts", "must be >= 0, got -1"),
        ("judge: {timeout: 0}\n", "judge.timeout", "must be > 0, got 0"),
        ("judge: {backoff: -1}\n", "judge.backoff", "must be >= 0, got -1"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, key, msg):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"'{key}" in str(err.value) and msg in str(err.value)
    assert str(path) in str(err.value)


def test_invalid_yaml_reports_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rm:\n  lr: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML line"):
        load_config(path)


def test_set_errors():
    cfg = Config()
    with pytest.raises(ConfigError, match="'rm.nope'"):
        set_path(cfg, "rm.nope", "1")
    with pytest.raises(ConfigError, match="expected true or false"):
        set_path(cfg, "data.strict", "maybe")
    set_path(cfg, "model.system_prompt", "null")
    assert cfg.model.system_prompt is None
    set_path(cfg, "model.name", "123")
    assert cfg.model.name == "123"


def test_help_comes_from_attribute_docstrings():
    assert "prompt-disjoint" in field_help(DataConfig, "test_fraction") or "held out" in field_help(
        DataConfig, "test_fraction"
    )


def test_cli_help_lists_generated_flags(capsys):
    from safer_rm.cli import main

    with pytest.raises(SystemExit):
        main(["train-rm", "--help"])
    out = capsys.readouterr().out
    assert "--rm.freeze_layers" in out and "Freeze the embeddings" in out and "--set KEY=VALUE" in out


def test_extends_merges_sections(tmp_path):
    (tmp_path / "base.yaml").write_text("run: {name: base, seeds: [0]}\nrm: {lr: 1.0e-4, epochs: 3}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nrun: {name: child}\nrm: {epochs: 1}\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert (cfg.run.name, cfg.run.seeds, cfg.rm.lr, cfg.rm.epochs) == ("child", [0], 1e-4, 1.0)
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "loop.yaml")


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(root.glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.run.name, path
    full = load_config(root / "full.yaml")
    assert full.run.seeds == [0, 1, 2] and full.curation.poison_ratios == [0.5, 1.0, 2.5, 5.0]
    assert full.model.name == "minilm" and len(full.data.sources) == 4
