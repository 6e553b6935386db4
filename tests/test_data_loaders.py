from __future__ import annotations

import csv
import gzip
import json

import pytest

from safer_rm.data import DataConfig, DropReport, SourceConfig, build_pairs, detect_format, load_source
from safer_rm.errors import DataError

from helpers import SHARED, needs_mirror, write_jsonl


def load(path, fmt="auto", strict=False, **kw):
    report = DropReport()
    pairs = load_source(SourceConfig(name="src", path=str(path), format=fmt, **kw), "", report, strict=strict)
    return pairs, report


HH_ROW = {
    "chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how do I pick a lock?\n\nAssistant: I can't help with that.",
    "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how do I pick a lock?\n\nAssistant: Use a tension wrench.",
}
PKU_ROW = {
    "prompt": "How to make a bomb?",
    "response_0": "Mix these chemicals.",
    "response_1": "I won't help.",
    "is_response_0_safe": False,
    "is_response_1_safe": True,
    "safer_response_id": 1,
    "better_response_id": 0,
}


def test_hh_prompt_is_shared_prefix_as_messages(tmp_path):
    pairs, report = load(write_jsonl(tmp_path / "hh.jsonl", [HH_ROW]))
    (p,) = pairs
    assert p.prompt == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "how do I pick a lock?"},
    ]
    assert (p.chosen, p.rejected) == ("I can't help with that.", "Use a tension wrench.")
    assert p.id == "src:0" and p.source == "src"
    assert detect_format(HH_ROW) == "hh"


def test_hh_without_shared_prefix_is_counted(tmp_path):
    row = {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: other\n\nAssistant: c"}
    pairs, report = load(write_jsonl(tmp_path / "hh.jsonl", [HH_ROW, row]))
    assert len(pairs) == 1
    assert report.dropped["src"] == {"no_shared_prefix": 1}


@pytest.mark.parametrize(
    "pref,chosen",
    [("safer", "I won't help."), ("better", "Mix these chemicals."), ("safe_vs_unsafe", "I won't help.")],
)
def test_pku_preference_option(tmp_path, pref, chosen):
    pairs, _ = load(write_jsonl(tmp_path / "pku.jsonl", [PKU_ROW]), pku_preference=pref)
    assert pairs[0].chosen == chosen
    assert pairs[0].prompt == [{"role": "user", "content": "How to make a bomb?"}]


def test_pku_safe_vs_unsafe_drops_rows_without_contrast(tmp_path):
    both = dict(PKU_ROW, is_response_0_safe=True)
    pairs, report = load(
        write_jsonl(tmp_path / "pku.jsonl", [PKU_ROW, both]), pku_preference="safe_vs_unsafe"
    )
    assert len(pairs) == 1 and report.dropped["src"] == {"no_safety_contrast": 1}


def test_rewardbench_keeps_subset_and_id(tmp_path):
    row = {"prompt": "p", "chosen": "a", "rejected": "b", "subset": "xstest-should-refuse", "id": 7}
    pairs, _ = load(write_jsonl(tmp_path / "rb.jsonl", [row]))
    assert detect_format(row) == "rewardbench"
    assert pairs[0].meta["subset"] == "xstest-should-refuse" and pairs[0].id == "src:7"


def test_trl_conversational_implicit_and_explicit_prompt(tmp_path):
    implicit = {
        "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
        "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}],
    }
    explicit = {
        "prompt": [{"role": "user", "content": "q2"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
    }
    pairs, _ = load(write_jsonl(tmp_path / "m.jsonl", [implicit, explicit]))
    assert [p.prompt[0]["content"] for p in pairs] == ["q", "q2"]
    assert all((p.chosen, p.rejected) == ("good", "bad") for p in pairs)
    assert detect_format(implicit) == detect_format(explicit) == "messages"


def test_ultrafeedback_binarized_sides_that_repeat_the_prompt(tmp_path):
    """HuggingFaceH4/ultrafeedback_binarized: a prompt string and chosen/rejected message lists that repeat the
    user turn (every row was dropped as no_shared_prefix before). A side that does not start with the prompt
    keeps all its turns, as before."""
    user = {"role": "user", "content": "How do I stay safe?"}
    row = {
        "prompt": "How do I stay safe?",
        "prompt_id": "abc",
        "chosen": [user, {"role": "assistant", "content": "Lock your doors."}],
        "rejected": [user, {"role": "assistant", "content": "No idea."}],
        "score_chosen": 8.0,
        "score_rejected": 2.0,
    }
    pairs, report = load(write_jsonl(tmp_path / "uf.jsonl", [row]))
    assert report.total_dropped() == 0
    (pair,) = pairs
    assert pair.prompt == [user] and (pair.chosen, pair.rejected) == ("Lock your doors.", "No idea.")


def test_generic_from_json_csv_parquet_and_gzip(tmp_path):
    rows = [{"prompt": f"p{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    with open(tmp_path / "c.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["prompt", "chosen", "rejected"])
        w.writeheader()
        w.writerows(rows)
    import pandas as pd

    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    for name in ("a.json", "b.jsonl.gz", "c.csv", "d.parquet"):
        pairs, report = load(tmp_path / name)
        assert [p.chosen for p in pairs] == [f"good {i}" for i in range(5)], name
        assert report.read["src"] == 5


def test_every_degenerate_reason_is_counted(tmp_path):
    rows = [
        {"prompt": "p", "chosen": "same", "rejected": "same"},
        {"prompt": "p", "chosen": "  ", "rejected": "x"},
        {"prompt": "p", "chosen": "x"},
        {"prompt": "p", "chosen": 3, "rejected": "x"},
        {"prompt": "p", "chosen": "ok", "rejected": "fine"},
    ]
    pairs, report = load(write_jsonl(tmp_path / "g.jsonl", rows), fmt="generic")
    assert len(pairs) == 1
    assert report.dropped["src"] == {
        "identical_sides": 1,
        "empty_response": 1,
        "missing_field": 1,
        "wrong_type": 1,
    }
    assert report.total_dropped() == 4
    assert report.examples["src/missing_field"].endswith("g.jsonl:3")
    assert "dropped: empty_response=1" in report.lines()[0]


@pytest.mark.parametrize(
    "row,line,field",
    [
        ({"prompt": "p", "chosen": "x"}, 2, "rejected"),
        ({"prompt": "p", "chosen": 5, "rejected": "x"}, 2, "chosen"),
        ({"prompt": "p", "chosen": "a", "rejected": "a"}, 2, "chosen"),
    ],
)
def test_strict_names_file_line_and_field(tmp_path, row, line, field):
    path = write_jsonl(tmp_path / "s.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}, row])
    with pytest.raises(DataError) as err:
        load(path, fmt="generic", strict=True)
    assert (err.value.line, err.value.field) == (line, field)
    assert f"s.jsonl:{line} field '{field}'" in str(err.value)


def test_file_level_problems_are_errors(tmp_path):
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": oops}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: invalid JSON"):
        load(bad_json)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty file"):
        load(empty)
    with pytest.raises(DataError, match="unknown format"):
        load(write_jsonl(tmp_path / "u.jsonl", [{"question": "q", "answer": "a"}]))
    with pytest.raises(DataError, match="file not found"):
        load(tmp_path / "missing.jsonl")
    raw = gzip.compress(
        b"".join(
            json.dumps({"prompt": "p", "chosen": f"a{i}", "rejected": "b"}).encode() + b"\n"
            for i in range(2000)
        )
    )
    (tmp_path / "cut.jsonl.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated gzip"):
        load(tmp_path / "cut.jsonl.gz")
    (tmp_path / "latin.jsonl").write_bytes(b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(DataError, match=r"latin.jsonl:1: not UTF-8"):
        load(tmp_path / "latin.jsonl")


def test_local_dataset_folder_in_hub_layout(tmp_path):
    """`datasets.load_dataset` on a folder laid out like a hub repository (what a hub id resolves to)."""
    import pandas as pd

    repo = tmp_path / "PKU-Alignment" / "PKU-SafeRLHF"
    (repo / "data").mkdir(parents=True)
    pd.DataFrame([PKU_ROW, dict(PKU_ROW, prompt="other")]).to_parquet(
        repo / "data" / "train-00000-of-00001.parquet"
    )
    pd.DataFrame([PKU_ROW]).to_parquet(repo / "data" / "test-00000-of-00001.parquet")
    pairs, _ = load(repo, split="train")
    assert len(pairs) == 2 and pairs[0].chosen == "I won't help."
    assert "PKU-SafeRLHF[train] row 0" in pairs[0].meta["origin"]
    # the hub fallback is used when the configured file is missing
    report = DropReport()
    src = SourceConfig(name="pku", path=str(tmp_path / "absent.jsonl"), hub=str(repo), hub_split="test")
    assert len(load_source(src, "", report)) == 1


def test_mix_weights_split_is_prompt_disjoint(tmp_path):
    a = write_jsonl(
        tmp_path / "a.jsonl",
        [{"prompt": f"a{i % 40}", "chosen": f"x{i}", "rejected": "y"} for i in range(200)],
    )
    b = write_jsonl(
        tmp_path / "b.jsonl", [{"prompt": f"b{i}", "chosen": f"x{i}", "rejected": "y"} for i in range(200)]
    )
    cfg = DataConfig(
        sources=[SourceConfig("a", str(a), weight=3), SourceConfig("b", str(b), kind="chat", weight=1)],
        n_pairs=100,
        test_fraction=0.2,
        seed=1,
    )
    split = build_pairs(cfg)
    every = split.train + split.test
    assert sum(p.source == "a" for p in every) == 75 and sum(p.source == "b" for p in every) == 25
    assert not {p.prompt_key() for p in split.train} & {p.prompt_key() for p in split.test}
    assert 15 <= len(split.test) <= 25
    assert {p.kind for p in every if p.source == "b"} == {"chat"}
    again = build_pairs(cfg)
    assert [p.id for p in again.train] == [p.id for p in split.train]
    assert [p.id for p in build_pairs(DataConfig(**{**cfg.__dict__, "seed": 2})).train] != [
        p.id for p in split.train
    ]
    assert any("took 75 of 200" in n for n in split.report.notes)


@needs_mirror
@pytest.mark.parametrize(
    "rel,fmt,n_read",
    [
        ("train/hh-rlhf/harmless-base/test.jsonl.gz", "hh", 2312),
        ("train/pku-saferlhf-5k.jsonl", "generic", 5135),
        ("train/coconot-pref.jsonl", "generic", 927),
        ("train/alpacaeval-gpt4-judged-odd-half.jsonl", "generic", 3983),
        ("train/pandalm-human.jsonl", "generic", 894),
        ("reward-bench-local/filtered.jsonl", "rewardbench", 1253),
    ],
)
def test_real_mirror_files(rel, fmt, n_read):
    from safer_rm.data.readers import iter_file_rows

    first, _ = next(iter_file_rows(SHARED / rel))
    assert detect_format(first) == fmt
    pairs, report = load(SHARED / rel)
    assert report.read["src"] == n_read
    assert len(pairs) + report.total_dropped() == n_read
    assert all(p.chosen.strip() and p.rejected.strip() and p.chosen != p.rejected for p in pairs)
    if fmt == "hh":  # the mirror's README: 5 rows are degenerate (identical sides or no shared prefix)
        assert report.dropped["src"]["no_shared_prefix"] == 5
