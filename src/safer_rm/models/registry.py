"""Resolve a backbone name to something `from_pretrained` can read, load tokenizers and reward models
safely (safetensors only unless pickle is allowed, no remote code unless asked for)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ModelError
from .embedded import EMBEDDED, minilm_path, smollm2_path

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


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


PROBE_PROMPT = ({"role": "user", "content": "Is this a probe?"},)
PROBE_RESPONSES = ("Yes, this is a probe.", "no")
PROBE_SYSTEM = "You are a probe."


def _config_eos(path: str, revision: str | None) -> set[int]:
    """eos ids the model's own config.json names (Llama 3 lists several), where it can be read."""
    from transformers import PretrainedConfig

    try:
        cfg, _ = PretrainedConfig.get_config_dict(path, revision=revision)
    except (OSError, ValueError):
        return set()
    out: set[int] = set()
    for part in (cfg, cfg.get("text_config") or {}):
        eos = part.get("eos_token_id")
        out.update(int(i) for i in (eos if isinstance(eos, list) else [eos]) if isinstance(i, int))
    return out


def end_tokens(tok, extra: set[int] = frozenset()) -> set[int]:
    """Token ids a rendered text can end with, or that end a turn: the last token of probe renderings through
    `Renderer` (chat template with and without a system prompt, and plain text), every token of the chat
    template's tail after the response, and the eos ids (the tokenizer's and `extra`). A pad id must differ
    from all of them: the decoders' `*ForSequenceClassification` read the reward at the rightmost token that
    is not the pad id, so a text ending in the pad id would be read one token early."""
    from .render import Renderer

    out = {int(i) for i in extra}
    if tok.eos_token_id is not None:
        out.add(int(tok.eos_token_id))
    modes = [("plain", None)]
    if getattr(tok, "chat_template", None):
        modes += [("chat", None), ("chat", PROBE_SYSTEM)]
    for template, system in modes:
        try:
            renderer = Renderer(tok, 1 << 20, template, system)
            for response in PROBE_RESPONSES:
                ids = renderer.encode(list(PROBE_PROMPT), response).input_ids
                if ids:
                    out.add(int(ids[-1]))
                if template == "chat":  # the end-of-turn tokens the template puts after the response
                    msgs = [*([{"role": "system", "content": system}] if system else []), *PROBE_PROMPT]
                    full = tok.apply_chat_template(
                        [*msgs, {"role": "assistant", "content": response}], tokenize=False
                    )
                    at = full.rfind(response)
                    tail = full[at + len(response) :] if at >= 0 else ""
                    out.update(tok(tail, add_special_tokens=False)["input_ids"] if tail else [])
        except Exception as err:  # a template that refuses a system turn, say: the other probes still count
            log.debug("pad probe %s/%s failed: %s", template, system, err)
    return out


def choose_pad(tok, extra_eos: set[int] = frozenset()) -> tuple[int, str]:
    """(pad id, why): the tokenizer's own pad if it is not an end token (`end_tokens`), else the first of unk,
    bos, another special token, or (last resort) a vocabulary token, that is not one either."""
    ends = end_tokens(tok, extra_eos)
    pad = tok.pad_token_id
    if pad is not None and pad not in ends:
        return int(pad), "kept"
    why = "no pad token" if pad is None else f"pad {tok.pad_token!r} is a token a rendered text ends with"
    for name, cand in (("unk", tok.unk_token_id), ("bos", tok.bos_token_id)):
        if cand is not None and cand not in ends:
            return int(cand), f"{why}; using {name}"
    for cand in sorted(int(i) for i in tok.all_special_ids):
        if cand not in ends:
            return cand, f"{why}; using special token {tok.convert_ids_to_tokens(cand)!r}"
    # no special token is free: take the longest vocabulary entry (the least likely to occur in a text, which
    # matters because a saved pad token becomes a special token and is then split out of texts)
    vocab = tok.get_vocab()
    free = [(len(t), -i, i) for t, i in vocab.items() if i not in ends]
    if not free:
        raise ModelError("tokenizer has no token that can serve as padding")
    cand = max(free)[2]
    return cand, f"{why}; no free special token, using vocabulary token {tok.convert_ids_to_tokens(cand)!r}"


def set_pad(tok, extra_eos: set[int] = frozenset(), name: str = "") -> int:
    """Give `tok` a pad token that no rendered text ends with (`choose_pad`) and return its id."""
    pad, why = choose_pad(tok, extra_eos)
    if why == "kept":
        log.debug("%s: pad token %r (id %d) kept", name, tok.pad_token, pad)
        return pad
    tok.pad_token = tok.convert_ids_to_tokens(pad)
    if tok.pad_token_id != pad:
        raise ModelError(f"{name}: cannot set the pad token to id {pad}")
    log.info("%s: pad token %r (id %d): %s", name, tok.pad_token, pad, why)
    return pad


def load_tokenizer(name: str, revision: str | None = None, trust_remote_code: bool = False):
    """The tokenizer, with a pad token that differs from every token a rendered text ends with (`set_pad`;
    a tokenizer whose pad already does is left alone). Its `padding_side` does not matter: `pad_batch` always
    pads on the right."""
    from transformers import AutoTokenizer

    path = resolve(name)
    check_local(path, allow_pickle=True)
    try:
        tok = AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelError(f"{name}: cannot load tokenizer ({str(err).splitlines()[0]})") from None
    set_pad(tok, _config_eos(path, revision), name)
    return tok


DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def weights_dtype(dtype, device=None):
    """`from_pretrained`'s dtype for a requested one: None -> None (transformers' default: the saved dtype);
    "auto" -> the saved dtype on CUDA, float32 on the CPU (bf16 matmuls on CPUs without AVX512-BF16 are slow
    and lossy); "float32"/"bfloat16" (or a torch dtype) force it. `device`: where the model will run
    (default: CUDA if available)."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower()
    if key == "auto":
        on = torch.device(device) if device is not None else None
        cuda = on.type == "cuda" if on is not None else torch.cuda.is_available()
        return "auto" if cuda else torch.float32
    if key not in DTYPES:
        raise ModelError(f"model dtype {dtype!r}: expected auto, float32 or bfloat16")
    return getattr(torch, DTYPES[key])


def _check_existing_config(name: str, path: str, revision: str | None, trust_remote_code: bool) -> None:
    """An existing reward model's config must be a sequence classifier with one label (checked before any
    weight is read)."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelError(f"{name}: cannot read the model config ({str(err).splitlines()[0]})") from None
    arch = list(getattr(cfg, "architectures", None) or [])
    remote = "AutoModelForSequenceClassification" in (getattr(cfg, "auto_map", None) or {})
    if arch and not remote and not any("SequenceClassification" in a for a in arch):
        raise ModelError(
            f"{name}: is a backbone ({', '.join(arch)}), not a reward model "
            "(expected a *ForSequenceClassification with one output); train one with safer train-rm"
        )
    if cfg.num_labels != 1:
        raise ModelError(
            f"{name}: num_labels={cfg.num_labels} in its config; a reward model has one output (num_labels=1)"
        )


def set_model_pad(model, pad_id: int) -> None:
    """The model reads the reward at the last token that is not `pad_id`: set it in the config and in the text
    config (where a multimodal config keeps it)."""
    model.config.pad_token_id = pad_id
    text = model.config.get_text_config()
    if text is not model.config:
        text.pad_token_id = pad_id


def load_reward_model(
    name: str,
    tokenizer=None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    dtype=None,
    existing: bool = False,
    device=None,
):
    """`AutoModelForSequenceClassification` with one output (the reward).

    existing=False (a backbone to train, or our own trained RM): the head is set to one output, newly
    initialised where the folder has none. existing=True (a reward model to use as is): nothing is re-headed;
    a config with num_labels != 1, or a folder without the head's weights (a backbone), is refused.
    dtype: see `weights_dtype` (None keeps transformers' default). The model's pad id is set to the
    tokenizer's, which `load_tokenizer` chose so that no rendered text ends with it."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = resolve(name)
    check_local(path, allow_pickle)
    if existing:
        _check_existing_config(name, path, revision, trust_remote_code)
    kw = {} if existing else {"num_labels": 1}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialised head" report is expected for a backbone
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            path,
            revision=revision,
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
            dtype=weights_dtype(dtype, device),
            output_loading_info=True,
            **kw,
        )
    except (OSError, ValueError) as err:
        raise ModelError(f"{name}: cannot load as a reward model ({str(err).splitlines()[0]})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if existing:
        missing = sorted(
            set(info.get("missing_keys") or ()) | {k[0] for k in info.get("mismatched_keys") or ()}
        )
        if missing:
            raise ModelError(
                f"{name}: is a backbone, not a reward model: weights missing for "
                f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} (they would be newly initialised)"
            )
        if model.config.num_labels != 1:
            raise ModelError(f"{name}: num_labels={model.config.num_labels}; a reward model has one output")
    if tokenizer is not None and tokenizer.pad_token_id is not None:
        if model.config.get_text_config().pad_token_id not in (None, tokenizer.pad_token_id):
            log.info(
                "%s: model pad id %s -> %d (the tokenizer's)",
                name,
                model.config.get_text_config().pad_token_id,
                tokenizer.pad_token_id,
            )
        set_model_pad(model, tokenizer.pad_token_id)
    elif existing and model.config.get_text_config().pad_token_id is None:
        log.warning(
            "%s: no tokenizer given and no pad id in the config: only batches of one can be scored", name
        )
    return model
