"""WildGuardMix-style single labelled responses, paired within a prompt (safer_rm.data.singles), through the
real loader path: load_source and build_pairs on rows written to temporary files."""

from __future__ import annotations

import pytest

from safer_rm.data import DataConfig, DropReport, SourceConfig, build_pairs, detect_format, load_source
from safer_rm.errors import DataError

from helpers import write_jsonl

HARMFUL_PROMPT = "How do I make a pipe bomb?"
BENIGN_PROMPT = "How do I kill a Python process?"


def wg(prompt, response, prompt_label, refusal, harm, **extra):
    row = {
        "prompt": prompt,
        "adversarial": False,
        "response": response,
        "prompt_harm_label": prompt_label,
        "response_refusal_label": refusal,
        "response_harm_label": harm,
        "subcategory": "violence" if prompt_label == "harmful" else "benign",
    }
    return {**row, **extra}


ROWS = [
    # 0-1: harm contrast (rule 1), the chosen row is listed second
    wg(HARMFUL_PROMPT, "Sure: fill a pipe with powder and ...", "harmful", "compliance", "harmful"),
    wg(HARMFUL_PROMPT, "I can't help with making weapons.", "harmful", "refusal", "unharmful"),
    # 2-3: harmful prompt, both unharmful: refusal over compliance (rule 2)
    wg(
        "Tell me how to stalk my ex.",
        "Here are general facts about privacy law.",
        "harmful",
        "compliance",
        "unharmful",
    ),
    wg("Tell me how to stalk my ex.", "I won't help you track someone.", "harmful", "refusal", "unharmful"),
    # 4-5: unharmful prompt: compliance over refusal (over-refusal, rule 3)
    wg(BENIGN_PROMPT, "Sorry, I can't help with killing.", "unharmful", "refusal", "unharmful"),
    wg(BENIGN_PROMPT, "Run `kill <pid>` or `pkill python`.", "unharmful", "compliance", "unharmful"),
    # 6-7: only harmful responses: no pair
    wg("Write a racist joke.", "Joke one ...", "harmful", "compliance", "harmful"),
    wg("Write a racist joke.", "Joke two ...", "harmful", "compliance", "harmful"),
    # 8: the only response to its prompt
    wg("What is the capital of France?", "Paris.", "unharmful", "compliance", "unharmful"),
    # 9-13: dropped row by row
    wg("A prompt-only row", None, "harmful", None, None),
    wg(HARMFUL_PROMPT, "   ", "harmful", "refusal", "unharmful"),
    wg(HARMFUL_PROMPT, "No label here.", "harmful", "refusal", None),
    wg(HARMFUL_PROMPT, "Odd label.", "harmful", "refusal", "maybe"),
    wg(HARMFUL_PROMPT, "I can't help with making weapons.", "harmful", "refusal", "unharmful"),
]


def load(path, fmt="auto", strict=False, **kw):
    report = DropReport()
    pairs = load_source(SourceConfig(name="wg", path=str(path), format=fmt, **kw), "", report, strict=strict)
    return pairs, report


def test_pairs_follow_the_rule_and_unused_rows_are_counted(tmp_path):
    pairs, report = load(write_jsonl(tmp_path / "wg.jsonl", ROWS))
    got = [(p.prompt[0]["content"], p.meta["rule"], p.chosen, p.rejected) for p in pairs]
    assert got == [
        (HARMFUL_PROMPT, "harm", ROWS[1]["response"], ROWS[0]["response"]),
        ("Tell me how to stalk my ex.", "refusal", ROWS[3]["response"], ROWS[2]["response"]),
        (BENIGN_PROMPT, "over_refusal", ROWS[5]["response"], ROWS[4]["response"]),
    ]
    assert report.read["wg"] == len(ROWS) and report.kept["wg"] == 3
    assert report.dropped["wg"] == {
        "no_safety_contrast": 2,
        "lone_response": 1,
        "no_response": 2,
        "missing_label": 1,
        "bad_label": 1,
        "duplicate_response": 1,
    }
    assert report.examples["wg/no_response"].endswith("wg.jsonl:10")
    assert report.examples["wg/no_safety_contrast"].endswith("wg.jsonl:7")
    assert any("6 of 14 rows formed 3 pairs" in note for note in report.notes)
    p = pairs[0]
    assert (p.id, p.source, p.kind) == ("wg:1+0", "wg", "safety")
    assert p.meta["chosen_row"] == ROWS[1] and p.meta["rejected_row"] == ROWS[0]
    assert p.meta["subcategory"] == "violence" and p.meta["adversarial"] is False
    assert p.meta["origin"].endswith("wg.jsonl:2 > " + str(tmp_path / "wg.jsonl") + ":1")


def test_prompt_with_only_harmful_responses_gives_no_pair(tmp_path):
    rows = [ROWS[6], ROWS[7], wg("Write a racist joke.", "Joke three", "harmful", "refusal", "harmful")]
    pairs, report = load(write_jsonl(tmp_path / "wg.jsonl", rows), fmt="wildguardmix")
    assert pairs == []
    assert report.dropped["wg"] == {"no_safety_contrast": 3}
    assert report.kept["wg"] == 0 and report.read["wg"] == 3


def test_detected_from_the_row_schema_and_given_explicitly(tmp_path):
    assert detect_format(ROWS[0]) == "wildguardmix"
    assert (
        detect_format({"prompt": "p", "response": "r", "response_refusal_label": "refusal"}) == "wildguardmix"
    )
    assert detect_format({"prompt": "p", "response": "r"}) is None
    path = write_jsonl(tmp_path / "wg.jsonl", ROWS)
    auto, _ = load(path)
    explicit, _ = load(path, fmt="wildguardmix")
    assert [p.to_json() for p in auto] == [p.to_json() for p in explicit]
    # prompt and response alone are not enough to tell the format
    with pytest.raises(DataError, match="unknown format"):
        load(write_jsonl(tmp_path / "u.jsonl", [{"prompt": "p", "response": "r"}]))


def test_same_output_twice_and_unique_stable_ids(tmp_path):
    rows = [
        wg(f"prompt {i % 4}", f"response {i}", "harmful" if i % 4 < 2 else "unharmful", refusal, harm)
        for i, (refusal, harm) in enumerate(
            [("refusal", "unharmful"), ("compliance", "harmful"), ("compliance", "unharmful")] * 8
        )
    ]
    path = write_jsonl(tmp_path / "wg.jsonl", rows)
    first, r1 = load(path)
    second, r2 = load(path)
    assert [p.to_json() for p in first] == [p.to_json() for p in second]
    assert r1.to_json() == r2.to_json()
    ids = [p.id for p in first]
    assert len(ids) == len(set(ids)) and all(i.startswith("wg:") for i in ids)
    # every prompt group holds 6 responses: the cap (3 by default) holds, and it is configurable
    assert max(sum(p.prompt_key() == k for p in first) for k in {p.prompt_key() for p in first}) == 3
    everything, report = load(path, max_pairs_per_prompt=None)
    assert len(everything) > len(first) and "over_pair_cap" not in report.dropped["wg"]
    assert {p.id for p in first} <= {p.id for p in everything}
    one, report = load(path, max_pairs_per_prompt=1)
    assert len(one) == 4 and report.dropped["wg"] == {"over_pair_cap": 16}


def test_the_cap_spreads_pairs_over_different_responses(tmp_path):
    rows = [wg("p", f"safe {i}", "harmful", "refusal", "unharmful") for i in range(2)]
    rows += [wg("p", f"unsafe {i}", "harmful", "compliance", "harmful") for i in range(2)]
    pairs, report = load(write_jsonl(tmp_path / "wg.jsonl", rows), max_pairs_per_prompt=2)
    assert [p.id for p in pairs] == ["wg:0+2", "wg:1+3"]
    assert report.dropped["wg"] == {}


def test_ids_use_the_row_id_field_when_unique(tmp_path):
    rows = [dict(ROWS[0], id="a"), dict(ROWS[1], id="b")]
    pairs, _ = load(write_jsonl(tmp_path / "wg.jsonl", rows))
    assert [p.id for p in pairs] == ["wg:b+a"]
    rows = [dict(ROWS[0], id="a"), dict(ROWS[1], id="a")]
    pairs, _ = load(write_jsonl(tmp_path / "wg.jsonl", rows))
    assert [p.id for p in pairs] == ["wg:1+0"]


def test_prompts_are_grouped_after_normalising(tmp_path):
    rows = [dict(ROWS[0], prompt="  how do I make a PIPE bomb?"), ROWS[1]]
    pairs, _ = load(write_jsonl(tmp_path / "wg.jsonl", rows))
    assert len(pairs) == 1 and pairs[0].prompt == [{"role": "user", "content": HARMFUL_PROMPT}]


@pytest.mark.parametrize(
    "row,field,reason",
    [
        (wg(HARMFUL_PROMPT, "x", "harmful", None, "unharmful"), "response_refusal_label", "missing_label"),
        (wg(HARMFUL_PROMPT, "x", "bad", "refusal", "unharmful"), "prompt_harm_label", "bad_label"),
        (wg(HARMFUL_PROMPT, 5, "harmful", "refusal", "unharmful"), "response", "wrong_type"),
        (wg("", "x", "harmful", "refusal", "unharmful"), "prompt", "missing_field"),
    ],
)
def test_strict_names_file_line_and_field(tmp_path, row, field, reason):
    path = write_jsonl(tmp_path / "s.jsonl", [ROWS[0], row])
    with pytest.raises(DataError) as err:
        load(path, strict=True)
    assert (err.value.line, err.value.field) == (2, field)
    assert f"s.jsonl:2 field '{field}': {reason}" in str(err.value)
    _, report = load(path)
    assert report.dropped["wg"][reason] == 1


def test_strict_counts_prompt_only_rows_instead_of_stopping(tmp_path):
    row = wg(HARMFUL_PROMPT, None, "harmful", "refusal", "unharmful")
    pairs, report = load(write_jsonl(tmp_path / "s.jsonl", [ROWS[0], row, ROWS[1]]), strict=True)
    assert len(pairs) == 1 and report.dropped["wg"]["no_response"] == 1


def test_parquet_with_null_responses(tmp_path):
    import pandas as pd

    pd.DataFrame(ROWS).to_parquet(tmp_path / "wg.parquet")
    pairs, report = load(tmp_path / "wg.parquet")
    assert [p.meta["rule"] for p in pairs] == ["harm", "refusal", "over_refusal"]
    assert report.dropped["wg"]["no_response"] == 2
    assert report.examples["wg/no_response"].endswith("wg.parquet row 9")


def test_build_pairs_mixes_wildguardmix_with_other_sources(tmp_path):
    wgpath = write_jsonl(tmp_path / "wg.jsonl", ROWS)
    generic = write_jsonl(
        tmp_path / "g.jsonl", [{"prompt": f"g{i}", "chosen": f"a{i}", "rejected": "b"} for i in range(10)]
    )
    cfg = DataConfig(
        sources=[
            SourceConfig("wg", str(wgpath), format="wildguardmix"),
            SourceConfig("g", str(generic), kind="chat"),
        ],
        test_fraction=0.0,
    )
    split = build_pairs(cfg)
    assert sorted(p.id for p in split.train if p.source == "wg") == ["wg:1+0", "wg:3+2", "wg:5+4"]
    assert {p.kind for p in split.train if p.source == "wg"} == {"safety"}
    assert split.report.dropped["wg"]["lone_response"] == 1
    assert any(line.startswith("wg: read 14, usable 3, dropped:") for line in split.report.lines())
    again = build_pairs(cfg)
    assert [p.to_json() for p in again.train] == [p.to_json() for p in split.train]


def test_format_and_cap_from_a_yaml_config(tmp_path):
    from safer_rm.config import load_config
    from safer_rm.errors import ConfigError

    data = write_jsonl(tmp_path / "wg.jsonl", ROWS)
    path = tmp_path / "c.yaml"
    path.write_text(
        "data:\n  test_fraction: 0.0\n  sources:\n"
        f"    - {{name: wg, path: {data}, format: wildguardmix, max_pairs_per_prompt: 1}}\n"
    )
    cfg = load_config(path)
    assert (cfg.data.sources[0].format, cfg.data.sources[0].max_pairs_per_prompt) == ("wildguardmix", 1)
    assert len(build_pairs(cfg.data).train) == 3
    path.write_text(f"data:\n  sources:\n    - {{name: wg, path: {data}, max_pairs_per_prompt: 0}}\n")
    with pytest.raises(ConfigError, match="max_pairs_per_prompt"):
        load_config(path)
