"""The stage graph on small stub stages: what reruns when a setting changes or an output goes missing, the
--dry-run text, and the stage locks (one writer per stage, many stages at once, stale locks taken over)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from safer_rm.config import Config
from safer_rm.errors import SaferError
from safer_rm.experiment.context import RunContext
from safer_rm.experiment.graph import Key, Stage, instances, need, per_edit
from safer_rm.experiment.locks import StageLock
from safer_rm.experiment.plan import Planner, plan_text
from safer_rm.experiment.registry import CLEARABLE, STAGES
from safer_rm.experiment.runner import Runner
from safer_rm.io import write_text

RAN: list[str] = []


def _work(ctx: RunContext, key: Key, name: str) -> dict:
    out = ctx.run.path(f"{name}{'-' + key.variant if key.variant else ''}.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(name)
    RAN.append(name if key.variant is None else f"{name}/{key.variant}")
    gate = os.environ.get("STUB_GATE")
    if gate:  # hold the stage until the test lets go
        Path(gate, f"{name}-{key.variant}.started").touch()
        while not Path(gate, "release").exists():
            time.sleep(0.02)
    return {"wrote": out.name}


def stub(name: str, needs=(), sections=(), cache=False, over=None) -> Stage:
    extra = {"over": over} if over else {}
    writes = (f"{name}-{{variant}}.txt",) if over else (f"{name}.txt",)
    return Stage(
        name,
        lambda ctx, key: _work(ctx, key, name),
        needs=need(*needs),
        sections=sections,
        writes=writes,
        cache=cache,
        **extra,
    )


def edits_need_c(cfg, key):
    return [("c", Key())]


# a -> b -> c -> e/<variant>;  a -> d;  cache x -> y
STUBS = [
    stub("a", sections=("data",)),
    stub("b", ("a",), ("sae",)),
    stub("c", ("b",)),
    stub("d", ("a",), ("features",)),
    stub("x", cache=True, sections=("activations",)),
    stub("y", ("x",)),
    Stage(
        "e",
        lambda ctx, key: _work(ctx, key, "e"),
        needs=edits_need_c,
        sections=("curation",),
        over=per_edit,
        writes=("e-{variant}.txt",),
    ),
]


def _edit(ctx: RunContext, key: Key) -> dict:
    """Like curate: writes atomically, and the bytes depend on curation.seed alone (not on what it needs)."""
    write_text(ctx.run.path(f"e-{key.variant}.txt"), f"seed {ctx.cfg.curation.seed}")
    RAN.append(f"e/{key.variant}")
    return {}


def _edited_file(ctx: RunContext, key: Key) -> dict:
    return {"set": ctx.data.file_hash(ctx.run.path(f"e-{key.variant}.txt"))}


# a -> b -> e/<variant> (its file depends on curation.seed alone) -> t/<variant> (reads it by content); a -> t
BY_CONTENT = [
    stub("a", sections=("data",)),
    stub("b", ("a",), ("sae",)),
    Stage(
        "e",
        _edit,
        needs=need("b"),
        sections=("curation",),
        over=per_edit,
        writes=("e-{variant}.txt",),
    ),
    Stage(
        "t",
        lambda ctx, key: _work(ctx, key, "t"),
        needs=lambda cfg, key: [("a", Key()), ("e", key)],
        sections=("rm",),
        over=per_edit,
        inputs=_edited_file,
        by_content=("e",),
        writes=("t-{variant}.txt",),
    ),
]


def _ctx(tmp_path, **sets) -> RunContext:
    cfg = Config()
    cfg.run.dir = str(tmp_path / "run")
    cfg.curation.methods = ["random"]
    cfg.curation.poison_ratios, cfg.curation.denoise_ratios = [5.0], [4.0]
    for key, value in sets.items():
        section, field = key.split("__")
        setattr(getattr(cfg, section), field, value)
    return RunContext.create(cfg)


def _run(tmp_path, stages=STUBS, **sets) -> list[str]:
    RAN.clear()
    ctx = _ctx(tmp_path, **sets)
    runner = Runner(ctx, stages)
    runner.run_all()
    return list(RAN)


def test_first_run_runs_all_needs_first_then_everything_is_reused(tmp_path):
    order = _run(tmp_path)
    assert order.index("a") < order.index("b") < order.index("c") < order.index("e/poison-random-5.0")
    assert sorted(order) == sorted(
        ["a", "b", "c", "d", "x", "y", "e/poison-random-5.0", "e/denoise-random-4.0"]
    )
    assert _run(tmp_path) == []


def test_changing_a_section_reruns_exactly_what_depends_on_it(tmp_path):
    _run(tmp_path)
    assert sorted(_run(tmp_path, sae__k=7)) == ["b", "c", "e/denoise-random-4.0", "e/poison-random-5.0"]
    assert _run(tmp_path, sae__k=7) == []
    assert _run(tmp_path, sae__k=7, features__top_n=3) == ["d"]
    assert sorted(_run(tmp_path, sae__k=7, features__top_n=3, curation__seed=5)) == [
        "e/denoise-random-4.0",
        "e/poison-random-5.0",
    ]


def test_a_missing_output_reruns_its_stage_and_everything_downstream(tmp_path):
    _run(tmp_path)
    (tmp_path / "run" / "b.txt").unlink()
    assert sorted(_run(tmp_path)) == ["b", "c", "e/denoise-random-4.0", "e/poison-random-5.0"]
    (tmp_path / "run" / "x.txt").unlink()  # a cache: rebuilt, its reader is not rerun
    assert _run(tmp_path) == ["x"]


def test_dry_run_says_why_and_agrees_with_the_run(tmp_path):
    ctx = _ctx(tmp_path)
    planner = Planner(ctx, STUBS)
    text = plan_text(planner.plan(planner.leaves()))
    assert text.splitlines()[0].split() == ["a", "run", "never", "run"]
    assert text.endswith("8 of 8 stages would run")
    _run(tmp_path)
    (tmp_path / "run" / "c.txt").unlink()
    ctx = _ctx(tmp_path, sae__k=7)
    decisions = {d.name: d for d in Planner(ctx, STUBS).plan(Planner(ctx, STUBS).leaves())}
    assert decisions["a"].run is False and decisions["a"].reason.startswith("done")
    assert decisions["b"].reason == "sae.k 64 -> 7"
    assert decisions["c"].reason == "output c.txt missing"
    assert decisions["e/poison-random-5.0"].reason == "upstream c reruns"
    assert decisions["d"].run is False
    ran = _run(tmp_path, sae__k=7)
    assert sorted(ran) == sorted(n for n, d in decisions.items() if d.run)


def test_a_stage_that_reran_elsewhere_makes_its_readers_rerun(tmp_path):
    _run(tmp_path)
    RAN.clear()
    ctx = _ctx(tmp_path)
    Runner(ctx, STUBS).run([(STUBS[1], Key())], force={"b"})  # `safer b`: only b, asked for by name
    assert RAN == ["b"]
    decisions = {
        d.name: d for d in Planner(_ctx(tmp_path), STUBS).plan(Planner(_ctx(tmp_path), STUBS).leaves())
    }
    assert decisions["c"].reason == "upstream b reran since"
    assert sorted(_run(tmp_path)) == ["c", "e/denoise-random-4.0", "e/poison-random-5.0"]


def test_a_need_read_by_content_reruns_its_reader_only_when_the_content_changes(tmp_path):
    edits = ["e/denoise-random-4.0", "e/poison-random-5.0"]
    readers = ["t/denoise-random-4.0", "t/poison-random-5.0"]
    assert sorted(_run(tmp_path, BY_CONTENT)) == sorted(["a", "b", *edits, *readers])
    assert sorted(_run(tmp_path, BY_CONTENT, sae__k=7)) == ["b", *edits]  # the same bytes: t reused
    assert _run(tmp_path, BY_CONTENT, sae__k=7) == []
    ran = _run(tmp_path, BY_CONTENT, sae__k=7, curation__seed=5)  # other bytes (of the same size)
    assert sorted(ran) == [*edits, *readers]
    RAN.clear()
    Runner(_ctx(tmp_path, sae__k=7, curation__seed=5), BY_CONTENT).run(
        [(BY_CONTENT[2], Key("poison-random-5.0"))], force={"e/poison-random-5.0"}
    )  # `safer curate --variant ...`: the same bytes again
    assert RAN == ["e/poison-random-5.0"]
    assert _run(tmp_path, BY_CONTENT, sae__k=7, curation__seed=5) == []  # not "upstream e reran since"
    ran = _run(tmp_path, BY_CONTENT, sae__k=7, curation__seed=5, data__seed=3)
    assert sorted(ran) == ["a", "b", *edits, *readers]  # a, which t needs by its settings, still reruns it


def test_dry_run_lists_a_by_content_reader_as_run_and_the_run_decides_by_its_bytes(tmp_path):
    _run(tmp_path, BY_CONTENT)
    reused_if = "upstream e/poison-random-5.0 reruns (reused if its input files come out the same)"
    for sets, retrained in (({"sae__k": 7}, False), ({"sae__k": 7, "curation__seed": 5}, True)):
        RAN.clear()
        runner = Runner(_ctx(tmp_path, **sets), BY_CONTENT)
        planned = {d.name: d for d in runner.planner.plan(runner.planner.leaves())}  # hashes today's files
        assert planned["t/poison-random-5.0"].run and planned["t/poison-random-5.0"].reason == reused_if
        assert planned["a"].run is False
        done = {d.name: d for d in runner.run_all()}  # the same context: rewritten files are hashed anew
        assert done["t/poison-random-5.0"].run is retrained and ("t/poison-random-5.0" in RAN) is retrained
        assert done["t/poison-random-5.0"].reason.startswith("input.set " if retrained else "done")
    ctx = _ctx(tmp_path, sae__k=8, curation__seed=5, rm__lr=0.5)  # its own setting changed too: no "if"
    planned = {d.name: d for d in Planner(ctx, BY_CONTENT).plan(Planner(ctx, BY_CONTENT).leaves())}
    assert planned["t/poison-random-5.0"].reason.startswith("rm.lr ") and planned["e/poison-random-5.0"].run


def test_stages_without_by_content_needs_fingerprint_as_before(tmp_path):
    """Their fingerprint is the formula it always was (its values and every need's fingerprint), so upgrading
    keeps their records current; train-rm of an edited set leaves curate's out and hashes the set instead."""
    from safer_rm.experiment.rundir import fingerprint

    planner = Planner(_ctx(tmp_path))
    assert {st.name: st.by_content for st in STAGES if st.by_content} == {"train-rm": ("curate",)}
    checked = 0
    for st, key in planner.all:
        fp, values = planner.fingerprint(st, key)
        needs = {n.instance(k): planner.fingerprint_of(n, k) for n, k in planner.needs(st, key)}
        if any(n.name in st.by_content for n, _ in planner.needs(st, key)):
            assert set(needs) == {"data", f"curate/{key.variant}"} and "input.train" in values
            needs.pop(f"curate/{key.variant}")
        else:
            checked += 1
        assert fp == fingerprint({"values": values, "needs": needs}), st.instance(key)
    assert checked > 10 and "train-rm/clean/seed-0" in {st.instance(k) for st, k in planner.all}


# ---- locks ---------------------------------------------------------------------------------------------
def _child(run_dir: str, gate: str, names: list[str], result: str) -> None:
    os.environ["STUB_GATE"] = gate
    cfg = Config()
    cfg.run.dir = run_dir
    cfg.curation.methods = ["random"]
    cfg.curation.poison_ratios, cfg.curation.denoise_ratios = [5.0], [4.0]
    ctx = RunContext.create(cfg)
    runner = Runner(ctx, STUBS)
    try:
        runner.run([i for i in runner.planner.all if i[0].instance(i[1]) in names])
        Path(result).write_text("ok")
    except SaferError as err:
        Path(result).write_text(f"refused: {err}")


def _start(tmp_path, gate, names, tag):
    proc = multiprocessing.get_context("fork").Process(
        target=_child, args=(str(tmp_path / "run"), str(gate), names, str(tmp_path / f"{tag}.result"))
    )
    proc.start()
    return proc


def _wait(path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"timed out waiting for {path}"
        time.sleep(0.02)


def test_a_second_process_on_the_same_stage_is_refused_at_once(tmp_path):
    _run(tmp_path)  # a..d done; then hold a forced rerun of e/poison in one process
    gate = tmp_path / "gate"
    gate.mkdir()
    (tmp_path / "run" / "e-poison-random-5.0.txt").unlink()
    first = _start(tmp_path, gate, ["e/poison-random-5.0"], "first")
    _wait(gate / "e-poison-random-5.0.started")
    ctx = _ctx(tmp_path)
    runner = Runner(ctx, STUBS)
    started = time.time()
    with pytest.raises(SaferError, match=rf"stage e/poison-random-5.0 is being run by pid {first.pid} on "):
        runner.run([i for i in runner.planner.all if i[0].instance(i[1]) == "e/poison-random-5.0"])
    assert time.time() - started < 5
    (gate / "release").touch()
    first.join(60)
    assert (tmp_path / "first.result").read_text() == "ok"


def test_two_processes_on_different_variants_both_finish_and_both_are_recorded(tmp_path):
    _run(tmp_path)
    for f in ("e-poison-random-5.0.txt", "e-denoise-random-4.0.txt"):
        (tmp_path / "run" / f).unlink()
    gate = tmp_path / "gate"
    gate.mkdir()
    one = _start(tmp_path, gate, ["e/poison-random-5.0"], "one")
    two = _start(tmp_path, gate, ["e/denoise-random-4.0"], "two")
    _wait(gate / "e-poison-random-5.0.started")
    _wait(gate / "e-denoise-random-4.0.started")  # both are inside their stage at the same time
    (gate / "release").touch()
    one.join(60)
    two.join(60)
    assert (tmp_path / "one.result").read_text() == "ok" and (tmp_path / "two.result").read_text() == "ok"
    stages = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]
    assert {n for n, s in stages.items() if s["status"] == "done"} >= {
        "e/poison-random-5.0",
        "e/denoise-random-4.0",
        "a",
        "b",
        "c",
    }
    assert _run(tmp_path) == []


def _hold_and_die(root: str) -> None:
    StageLock(root, "b").acquire()
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    _run(tmp_path)
    proc = multiprocessing.get_context("fork").Process(target=_hold_and_die, args=(str(tmp_path / "run"),))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    (tmp_path / "run" / "b.txt").unlink()
    with caplog.at_level(logging.WARNING, logger="safer_rm.experiment.locks"):
        assert sorted(_run(tmp_path))[:1] == ["b"]
    assert f"took over the lock left by pid {proc.pid}" in caplog.text


# ---- the registry is the one place stage facts live -----------------------------------------------------
def test_cli_clear_and_kill_points_come_from_the_registry():
    from safer_rm.cli import build_parser

    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert {st.name for st in STAGES if st.command} | {"run", "inspect", "report", "clear", "compare"} == set(
        subcommands
    )
    assert set(CLEARABLE) == {"cache"} | {st.folder for st in STAGES if st.folder}
    names = [st.instance(key) for st, key in instances(STAGES, Config())]
    assert len(names) == len(set(names)) and names[0] == "data"


def test_stage_patterns_and_setting_names(tmp_path):
    from safer_rm.experiment.graph import diff, dotted

    planner = Planner(_ctx(tmp_path), STUBS)
    assert [st.instance(k) for st, k in planner.matching(["e/poison-*"])] == ["e/poison-random-5.0"]
    with pytest.raises(SaferError, match="matches no stage"):
        planner.matching(["train-rm/*"])
    old = dotted({"data": {"sources": [{"name": "a", "weight": 3}], "seed": 0}})
    new = dotted({"data": {"sources": [{"name": "a", "weight": 2}], "seed": 0}})
    assert diff(old, new) == ["data.sources.0.weight 3 -> 2"]


def test_clear_refuses_a_folder_whose_stage_is_being_run(tmp_path, capsys):
    import yaml

    from safer_rm.cli import main

    run = tmp_path / "run"
    (run / "sae").mkdir(parents=True)
    (run / "manifest.json").write_text(
        json.dumps({"stages": {"train-sae": {"status": "running"}}, "inputs": {}})
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"run": {"dir": str(run)}, "data": {"root": str(tmp_path), "sources": []}}))
    with StageLock(run, "train-sae"):
        assert main(["clear", str(cfg), "-q", "--folders", "sae"]) == 2
    assert "stage train-sae is being run by pid" in capsys.readouterr().err and (run / "sae").is_dir()
    assert main(["clear", str(cfg), "-q", "--folders", "sae"]) == 0 and not (run / "sae").exists()
