"""Save and load SAEs in sparsify's layout, so that sparsify (and tools built on it) read our files and we
read theirs:

    <root>/<hookpoint>/cfg.json          sparsify's SparseCoderConfig fields + d_in (written by sparsify)
    <root>/<hookpoint>/sae.safetensors   encoder.weight, encoder.bias, W_dec, b_dec (never a pickle)
    <root>/<hookpoint>/safer_sae.json    our metadata: width, layer, position policy, standardisation, stats

Our metadata lives in its own file: sparsify 1.3.3 would drop extra cfg.json keys (`drop_extra_fields=True`),
but other readers of the layout may not. A folder without safer_sae.json (saved by sparsify) loads too.
The folder is written under a temporary name beside the target and renamed into place (an existing folder
is first moved aside, and moved back if the rename fails), so a reader never sees half an SAE.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError
from ..io import read_json, write_json
from .model import SparseCoder, TopKSAE

log = logging.getLogger(__name__)

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae.safetensors"
META_FILE = "safer_sae.json"
FORMAT = 1


def hookpoint_for(layer: int) -> str:
    """sparsify's name of the residual stream after block `layer` ("layers.<layer>")."""
    return f"layers.{layer}"


@dataclass
class SAEMeta:
    """What safer-rm records about an SAE beside sparsify's files."""

    layer: int | None = None
    """Hidden-state layer the SAE was trained on."""
    position_policy: str | None = None
    """Which token positions the training vectors came from (e.g. "sentence_end", "all")."""
    standardised: bool = True
    """Whether each input vector was standardised ((x - mean) / (std + 1e-6)) before encoding."""
    training: dict[str, float | int | str] = field(default_factory=dict)
    """Training statistics (steps, vectors, final loss, ...)."""


@dataclass
class LoadedSAE:
    sae: TopKSAE
    meta: SAEMeta | None
    """None for a folder saved by sparsify itself."""
    path: Path


def _check_hookpoint(hookpoint: str) -> None:
    parts = Path(hookpoint).parts
    if not parts or Path(hookpoint).is_absolute() or ".." in parts:
        raise ValueError(f"hookpoint must be a relative folder name, got {hookpoint!r}")


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


@contextlib.contextmanager
def replacing_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `target` to fill; on success its files are fsynced and it is renamed
    to `target` (an existing folder is first moved aside, and moved back if the rename fails)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    try:
        yield tmp
        _fsync_tree(tmp)
        if target.exists():
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if old.exists():
                os.replace(old, target)
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    if old.exists():
        shutil.rmtree(old)


def save_sae(sae: TopKSAE, root: str | os.PathLike, hookpoint: str, meta: SAEMeta | None = None) -> Path:
    """Write `sae` to `<root>/<hookpoint>/` (replacing what was there) and return that folder."""
    _check_hookpoint(hookpoint)
    target = Path(root) / hookpoint
    with replacing_folder(target) as tmp:
        sae.coder.save_to_disk(tmp)
        info = {
            "format": FORMAT,
            "d_in": sae.d_in,
            "num_latents": sae.num_latents,
            "k": sae.k,
            "hookpoint": hookpoint,
            **asdict(meta or SAEMeta()),
        }
        write_json(tmp / META_FILE, info)
    return target


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{path}: unreadable JSON: {err}") from err
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_meta(path: Path, d_in: int) -> SAEMeta | None:
    file = path / META_FILE
    if not file.is_file():
        return None
    data = _read_json(file)
    if data.get("d_in") != d_in:
        raise ModelError(f"{file}: d_in {data.get('d_in')} disagrees with {path / CFG_FILE} (d_in {d_in})")
    if not (data.get("layer") is None or isinstance(data["layer"], int)):
        raise ModelError(f"{file}: field 'layer' must be an integer or null, got {data['layer']!r}")
    return SAEMeta(**{k: v for k, v in data.items() if k in SAEMeta.__dataclass_fields__})


def load_sae(
    root: str | os.PathLike,
    hookpoint: str,
    *,
    d_in: int | None = None,
    layer: int | None = None,
    device: str | torch.device = "cpu",
) -> LoadedSAE:
    """Load `<root>/<hookpoint>/`, checking it against the width `d_in` and the `layer` it will be used on."""
    path = Path(root) / hookpoint
    if not path.is_dir():
        raise ModelError(f"{path}: no SAE folder here (expected {CFG_FILE} and {WEIGHTS_FILE} inside)")
    for name in (CFG_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise ModelError(f"{path / name}: missing; not an SAE folder in sparsify's layout")
    cfg = _read_json(path / CFG_FILE)
    width = cfg.get("d_in")
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ModelError(f"{path / CFG_FILE}: field 'd_in' must be a positive integer, got {width!r}")
    for flag in ("transcode", "skip_connection"):
        if cfg.get(flag):
            raise ModelError(
                f"{path / CFG_FILE}: {flag}=true is not a plain SAE; safer-rm needs an autoencoder"
            )
    if d_in is not None and width != d_in:
        raise ModelError(f"{path}: SAE of width {width} but layer has {d_in}")
    meta = _read_meta(path, width)
    if layer is not None:
        if meta is None or meta.layer is None:
            log.warning("%s: no layer recorded, cannot check that it belongs to layer %d", path, layer)
        elif meta.layer != layer:
            raise ModelError(f"{path}: SAE trained on layer {meta.layer} but layer {layer} was asked for")
    try:
        coder = SparseCoder.load_from_disk(path, device=device)
    except Exception as err:
        raise ModelError(f"{path / WEIGHTS_FILE}: cannot load: {err}") from err
    return LoadedSAE(TopKSAE(coder), meta, path)
