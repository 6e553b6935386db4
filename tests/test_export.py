from __future__ import annotations

import copy
import functools
import json

import numpy as np
import pytest
import yaml

from safer_rm.curation.edits import apply_edit, rank_for_edit
from safer_rm.curation.export import CARD_FILE, JSONL_FILE, META_COLUMN, PARQUET_FILE, export_pairs
from safer_rm.data import PreferencePair

datasets = pytest.importorskip("datasets")


@pytest.fixture
def load(tmp_path):
    """`datasets.load_dataset(..., split="train")` with its cache under tmp_path."""
    datasets.disable_progress_bars()
    return functools.partial(datasets.load_dataset, split="train", cache_dir=str(tmp_path / "hf-cache"))


def mixed_pairs() -> list[PreferencePair]:
    """Pairs from four sources whose meta keys and value types differ, as the loaders leave them."""
    user = [{"role": "user", "content": "How do I pick a lock?"}]
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    out = []
    for i in range(4):
        out.append(
            PreferencePair(
                f"pku:{i}",
                user,
                f"I can't help with that ({i}).",
                f"Sure, step {i}.",
                "pku",
                "safety",
                {
                    "is_response_0_safe": i % 2 == 0,
                    "safer_response_id": i % 2,
                    "origin": f"pku.jsonl:{i + 1}",
                    "score": 1.5,
                },
            )
        )
        out.append(
            PreferencePair(
                f"rb:{i}",
                chat,
                f"Hello {i}",
                "Go away.",
                "rb",
                "chat",
                {"subset": "alpacaeval-easy", "origin": f"rb.jsonl:{i + 1}", "score": 2, "note": None},
            )
        )
        out.append(
            PreferencePair(
                f"wg:{i}a+{i}b",
                user,
                "No.",
                f"Yes, {i}.",
                "wg",
                "safety",
                {
                    "rule": "harm",
                    "chosen_row": {"id": f"{i}a", "labels": ["unharmful", "refusal"]},
                    "adversarial": bool(i % 2),
                    "origin": f"wg.jsonl:{i + 1} > wg.jsonl:{i + 5}",
                },
            )
        )
        out.append(
            PreferencePair(f"hh:{i}", user, f"Nope {i}", "Fine.", "hh", "safety", {"origin": f"hh:{i}"})
        )
    return out


def original_meta(row: dict, flat: list[str]) -> dict:
    """A row's meta, rebuilt from its flat columns and its `meta` JSON string."""
    meta = {k: row[k] for k in flat}
    meta.update(json.loads(row[META_COLUMN]))
    return meta


def test_export_loads_with_datasets_by_folder_and_by_file(tmp_path, load):
    pairs = mixed_pairs()
    before = copy.deepcopy(pairs)
    values = np.linspace(1.0, -1.0, len(pairs))
    edit = apply_edit(pairs, [0, 5, 9], "poison", "safer", values)
    out = export_pairs(
        edit.pairs, tmp_path / "set", records=edit.records, card={"title": "mix", "ratio": 18.75}
    )
    assert pairs == before  # inputs untouched
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == sorted(
        [PARQUET_FILE, JSONL_FILE, CARD_FILE]
    )
    assert out.paths["parquet"] == tmp_path / "set" / PARQUET_FILE and out.rows == len(pairs)

    by_folder = load(str(tmp_path / "set"))
    by_parquet = load("parquet", data_files=str(out.paths["parquet"]))
    by_json = load("json", data_files=str(out.paths["jsonl"]))
    assert by_folder.column_names == by_parquet.column_names == out.columns
    assert by_folder.features == by_parquet.features
    assert set(by_json.column_names) == set(out.columns)
    # only keys every pair has, with one type, become columns; the rest stays in `meta`
    flat = [c for c in out.columns if c not in {"id", "prompt", "chosen", "rejected", "source", "kind"}]
    flat = [c for c in flat if c not in {"flipped", "edit_method", "edit_rank", "edit_score", META_COLUMN}]
    assert flat == ["origin"]
    assert by_folder.features["prompt"] == datasets.List(
        {"role": datasets.Value("string"), "content": datasets.Value("string")}
    )
    assert by_folder.features["edit_score"] == datasets.Value("float64")

    flips = {r["id"]: r for r in edit.records}
    for table in (by_folder, by_json):
        rows = table.to_list()
        assert [r["id"] for r in rows] == [p.id for p in edit.pairs]
        for row, pair, orig in zip(rows, edit.pairs, pairs):
            assert row["prompt"] == pair.prompt and (row["source"], row["kind"]) == (pair.source, pair.kind)
            assert (row["chosen"], row["rejected"]) == (pair.chosen, pair.rejected)
            assert original_meta(row, flat) == pair.meta  # every original field kept, losslessly
            assert row["flipped"] == (pair.id in flips)
            if row["flipped"]:
                assert (row["chosen"], row["rejected"]) == (orig.rejected, orig.chosen)
                r = flips[pair.id]
                assert (row["edit_method"], row["edit_rank"]) == ("safer", r["rank"])
                assert row["edit_score"] == pytest.approx(r["value"])
            else:
                assert row["edit_method"] is row["edit_rank"] is row["edit_score"] is None


def test_card_counts_header_and_edit_description(tmp_path, load):
    pairs = mixed_pairs()
    values = np.arange(len(pairs), dtype=float)
    groups = [p.source for p in pairs]
    chosen = rank_for_edit("denoise", "reward_margin", values, 4, range(len(pairs)), groups=groups)
    edit = apply_edit(pairs, chosen, "denoise", "reward_margin", values)
    card = {
        "title": "toy: denoise-reward_margin-25.0",
        "sources": {"pku": "PKU-Alignment/PKU-SafeRLHF", "rb": "allenai/reward-bench"},
        "ratio": 25.0,
        "settings": {"scope": "all", "seed": 0},
        "date": "2025-01-02",
    }
    out = export_pairs(edit.pairs, tmp_path / "set", records=edit.records, card=card)
    assert out.counts == {
        s: {"before": 4, "after": 3, "flipped": 0, "removed": 1} for s in ("hh", "pku", "rb", "wg")
    }

    text = (tmp_path / "set" / CARD_FILE).read_text()
    assert text.startswith("---\n")
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["pretty_name"] == card["title"]
    assert header["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": PARQUET_FILE}]}
    ]
    assert [f["name"] for f in header["dataset_info"]["features"]] == out.columns
    assert "&id" not in text  # no YAML anchors: the Hub reads plain YAML
    body = text.split("---\n", 2)[2]
    for line in (
        "- `pku`: PKU-Alignment/PKU-SafeRLHF",
        "- `hh`: origin not recorded",
        "- 4 pairs removed (25.00% of 16), selected by `reward_margin`: the clean reward model's own margin",
        "- Ratio asked for: 25% of the set before editing.",
        "| pku | 4 | 3 | 0 | 1 |",
        "| **total** | 16 | 12 | 0 | 4 |",
        "Settings: `scope` = `all`, `seed` = `0`",
        "Written by safer-rm 0.1.0 on 2025-01-02.",
    ):
        assert line in body, line
    assert "`chosen_row`" in body and "`subset`" in body  # the keys kept in the meta JSON are named
    # removed pairs are absent, and the folder loads as the card says
    loaded = load(str(tmp_path / "set"))
    assert len(loaded) == 12 and not any(loaded["flipped"])
    assert set(loaded["id"]) == {p.id for p in pairs} - {r["id"] for r in edit.records}


def test_unedited_export_and_records_checked(tmp_path, load):
    pairs = mixed_pairs()[:4]
    out = export_pairs(pairs, tmp_path / "plain")
    assert "flipped" not in out.columns and out.counts["pku"] == {
        "before": 1,
        "after": 1,
        "flipped": 0,
        "removed": 0,
    }
    assert "Not an edited set." in (tmp_path / "plain" / CARD_FILE).read_text()
    assert load(str(tmp_path / "plain"))["id"] == [p.id for p in pairs]
    flip = {"id": "nowhere", "source": "pku", "action": "flip", "rank": 1, "method": "safer", "value": 1.0}
    with pytest.raises(ValueError, match="nowhere"):
        export_pairs(pairs, tmp_path / "bad", records=[flip])
    with pytest.raises(ValueError, match="still in the set"):
        export_pairs(pairs, tmp_path / "bad", records=[{**flip, "id": pairs[0].id, "action": "remove"}])
    with pytest.raises(ValueError, match="more than once"):
        export_pairs([pairs[0], pairs[0]], tmp_path / "bad", records=[])


def test_json_reader_loads_a_large_mix_whose_keys_appear_late(tmp_path, load):
    """`datasets`' JSON reader fixes the types from the first 10 MB: a key only the last source has must not
    become a column that is all null there."""
    pad = "x" * 1000
    first = [
        PreferencePair(f"a:{i}", [{"role": "user", "content": pad}], pad, "no", "a", "chat", {"origin": "a"})
        for i in range(6_000)
    ]
    last = [
        PreferencePair(
            f"b:{i}",
            [{"role": "user", "content": "q"}],
            "c",
            "r",
            "b",
            "safety",
            {"origin": "b", "subset": "s"},
        )
        for i in range(10)
    ]
    out = export_pairs(first + last, tmp_path / "set", records=None)
    assert out.paths["jsonl"].stat().st_size > 10 << 20
    rows = load("json", data_files=str(out.paths["jsonl"]))
    assert json.loads(rows[-1][META_COLUMN]) == {"subset": "s"} and rows[-1]["origin"] == "b"
