"""Hidden states of the frozen lower blocks, computed once per rendered text and reused.

Memory does not grow with the data: computed states are flushed to safetensors shards every
`flush_every` texts and read back per batch from the (memory-mapped) shards.

When the lower N blocks of a reward model are frozen, their output for a given token sequence never
changes: not during training, not between the variants of an experiment (poisoning swaps labels, denoising
drops pairs; the texts stay the same), not in evaluation. This cache holds layer N of every text (bf16)
in safetensors shards on disk (the unflushed rest in memory), so each text pays for the lower blocks once
per run.

The precision the frozen blocks run in (`bf16` autocast or fp32) belongs to the cache, not to its callers:
the states are part of the reward model's input, so every stage that fills the cache (training, scoring,
extraction, attribution) must compute them alike, or the first stage to fill a text would decide what every
later stage reads. It is part of the fingerprint (a cache made in the other precision is discarded).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from tqdm.auto import tqdm

from .. import distributed
from ..io import quiet, read_json, save_tensors, write_json
from .batching import autocast, length_batches, pad_batch
from .layers import hidden_at

log = logging.getLogger(__name__)


def text_key(ids: Sequence[int]) -> str:
    return hashlib.sha1(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()


class PrefixCache:
    """Layer-`layer` states keyed by token ids. `fingerprint` names the frozen weights they came from, `bf16`
    whether the frozen blocks run under bf16 autocast (as in the reward model's training)."""

    def __init__(
        self,
        layer: int,
        fingerprint: str,
        directory: str | Path | None = None,
        flush_every: int = 2048,
        bf16: bool = False,
    ):
        self.layer, self.flush_every, self.bf16 = layer, flush_every, bf16
        self.fingerprint = f"{fingerprint}-bf16" if bf16 else fingerprint
        self.dir = Path(directory) if directory else None
        self.where: dict[str, str] = {}  # key -> shard file
        self._handles: dict[str, object] = {}
        self._unsaved: dict[str, torch.Tensor] = {}
        self._loaded: set[str] = set()
        if self.dir and (self.dir / "meta.json").is_file():
            meta = read_json(self.dir / "meta.json")
            if meta.get("fingerprint") == fingerprint and meta.get("layer") == layer:
                self._load()
            else:
                log.info("prefix cache %s belongs to other weights; starting a new one", self.dir)
                for shard in self.dir.glob("shard-*.safetensors"):
                    shard.unlink()

    def _load(self) -> None:
        for shard in sorted(self.dir.glob("shard-*.safetensors")):
            if shard.name in self._loaded:
                continue
            with safe_open(str(shard), framework="pt") as fh:
                for key in fh.keys():
                    self.where[key] = shard.name
            self._loaded.add(shard.name)
        log.info("prefix cache: %d texts on disk in %s", len(self.where), self.dir)

    def __len__(self) -> int:
        return len(self.where) + len(self._unsaved)

    def _has(self, key: str) -> bool:
        return key in self.where or key in self._unsaved

    def __contains__(self, ids: Sequence[int]) -> bool:
        return self._has(text_key(ids))

    def get(self, key: str) -> torch.Tensor:
        if key in self._unsaved:
            return self._unsaved[key]
        shard = self.where[key]
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.dir / shard), framework="pt")
        return self._handles[shard].get_tensor(key)

    @torch.inference_mode()
    def fill(
        self,
        model,
        sequences: Sequence[Sequence[int]],
        pad_id: int,
        batch_size: int = 64,
        progress: bool = True,
    ) -> int:
        """Compute the states of every sequence not cached yet, in the cache's precision; returns how many
        were computed."""
        todo: dict[str, Sequence[int]] = {}
        for ids in sequences:
            key = text_key(ids)
            if not self._has(key):
                todo[key] = ids
        if not todo:
            return 0
        if distributed.active() and self.dir is None:
            raise RuntimeError("a prefix cache shared by several processes needs a directory")
        keys = list(todo)
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        batches = distributed.my_share(length_batches([len(todo[k]) for k in keys], batch_size))
        for idx in tqdm(
            batches, desc=f"frozen blocks 1-{self.layer}", unit="batch", disable=quiet(progress), leave=False
        ):
            ids, mask = pad_batch([todo[keys[i]] for i in idx], pad_id)
            with autocast(device, self.bf16):
                hidden = hidden_at(
                    model, self.layer, input_ids=ids.to(device), attention_mask=mask.to(device)
                )
            hidden = hidden.to(torch.bfloat16).cpu()
            for row, i in enumerate(idx):
                n = len(todo[keys[i]])
                self._unsaved[keys[i]] = hidden[row, :n].clone()
            if self.dir and len(self._unsaved) >= self.flush_every:
                self.save()
        model.train(was_training)
        self.save()
        if distributed.active():  # every rank computed a share: read the others' shards
            distributed.barrier()
            self._load()
        return len(keys)

    def batch(self, sequences: Sequence[Sequence[int]], width: int | None = None) -> torch.Tensor:
        """[batch, width, d] float32 states for right-padded sequences (zeros at pads)."""
        states = [self.get(text_key(ids)) for ids in sequences]
        width = width or max(s.shape[0] for s in states)
        out = torch.zeros(len(states), width, states[0].shape[-1], dtype=torch.float32)
        for i, s in enumerate(states):
            out[i, : s.shape[0]] = s.float()
        return out

    def save(self) -> None:
        if not self.dir or not self._unsaved:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.dir / "meta.json", {"fingerprint": self.fingerprint, "layer": self.layer})
        name = f"shard-{len(self._loaded):05d}-r{distributed.rank()}.safetensors"
        save_tensors(self.dir / name, self._unsaved)
        self._loaded.add(name)
        for key in self._unsaved:
            self.where[key] = name
        self._unsaved = {}
