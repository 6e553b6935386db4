"""Whether bf16 autocast is on. `auto` follows the hardware: CUDA with bf16, or a CPU with AVX-512 BF16 or AMX
(read from /proc/cpuinfo). Machines of one kind come with and without those instructions, so `auto` gives
different numbers on them; tests force `true` or `false` (CPU autocast runs without the instructions, only
slower)."""

from __future__ import annotations

from pathlib import Path


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(setting: str) -> bool:
    if setting in ("true", "false"):
        return setting == "true"
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()
