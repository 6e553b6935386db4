"""The activation cache: sharded safetensors of kept vectors plus an index that maps every vector to
(pair, side, token position, token), written and read as a stream so memory does not grow with data.

Layout of a cache folder:
    index.json              layer, d, policy, standardised, pair ids, shard list with vector counts
    shard-00000.safetensors x [n, d] (float16, standardised), mean/std [n] (float32, for de-standardising),
                            pair [n] int32 (index into index.json's pairs), side [n] int8 (0 chosen, 1 rejected),
                            position [n] int32, token [n] int32
    tokens.safetensors      ids (every rendered sequence, concatenated) and starts [2 * n_pairs + 1]:
                            sequence of (pair p, side s) is ids[starts[2p+s]:starts[2p+s+1]]
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .. import distributed
from ..errors import StageError
from ..io import atomic_path, read_json, write_json

SIDES = ("chosen", "rejected")
FIELDS = ("x", "mean", "std", "pair", "side", "position", "token")


class CacheWriter:
    """Append vectors; a shard is written (atomically) whenever `shard_vectors` have accumulated. The write
    runs on a background thread while the caller computes the next batches (safetensors and torch release
    the GIL); at most one shard is in flight, and `close` waits for it, so errors still surface. Tensors
    handed to `add` must not be changed afterwards (CPU tensors of the right dtype are kept, not copied)."""

    def __init__(
        self,
        directory: str | Path,
        meta: dict,
        shard_vectors: int = 65536,
        dtype=torch.float16,
        with_batch: bool = False,
    ):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in (*self.dir.glob("shard-*.safetensors"), self.dir / "index.json"):
            old.unlink(missing_ok=True)
        self.meta = dict(meta)
        self.shard_vectors, self.dtype = shard_vectors, dtype
        self.fields = (*FIELDS, "batch") if with_batch else FIELDS
        self.buffer: dict[str, list[torch.Tensor]] = {f: [] for f in self.fields}
        self.buffered = 0
        self.shards: list[dict] = []
        self.tokens: list[np.ndarray] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-writer")
        self._pending: Future | None = None

    def add(
        self,
        x: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        pair: torch.Tensor,
        side: torch.Tensor,
        position: torch.Tensor,
        token: torch.Tensor,
        batch: int | None = None,
    ) -> None:
        for name, value, dtype in (
            ("x", x, self.dtype),
            ("mean", mean, torch.float32),
            ("std", std, torch.float32),
            ("pair", pair, torch.int32),
            ("side", side, torch.int8),
            ("position", position, torch.int32),
            ("token", token, torch.int32),
        ):
            self.buffer[name].append(value.detach().to("cpu", dtype))
        if "batch" in self.fields:
            self.buffer["batch"].append(
                torch.full((int(x.shape[0]),), -1 if batch is None else batch, dtype=torch.int32)
            )
        self.buffered += int(x.shape[0])
        if self.buffered >= self.shard_vectors:
            self._flush()

    def add_sequence(self, ids: list[int]) -> None:
        """Record a rendered sequence (call in order: pair 0 chosen, pair 0 rejected, pair 1 chosen, ...)."""
        self.tokens.append(np.asarray(ids, dtype=np.int32))

    def _flush(self) -> None:
        if not self.buffered:
            return
        self._wait()
        name = f"shard-{len(self.shards):05d}.safetensors"
        self.shards.append({"file": name, "vectors": self.buffered})
        self._pending = self._pool.submit(self._write, self.dir / name, self.buffer)
        self.buffer = {f: [] for f in self.fields}
        self.buffered = 0

    @staticmethod
    def _write(path: Path, buffer: dict[str, list[torch.Tensor]]) -> None:
        tensors = {name: torch.cat(parts) for name, parts in buffer.items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp))

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # re-raises the write's error here

    def close(self, tokens: bool = True) -> dict:
        try:
            self._flush()
            self._wait()
        finally:
            self._pool.shutdown(wait=True)
        if tokens:
            lengths = np.array([len(t) for t in self.tokens], dtype=np.int64)
            starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            ids = np.concatenate(self.tokens) if self.tokens else np.zeros(0, dtype=np.int32)
            with atomic_path(self.dir / "tokens.safetensors") as tmp:
                save_file({"ids": torch.from_numpy(ids), "starts": torch.from_numpy(starts)}, str(tmp))
        index = {**self.meta, "shards": self.shards, "vectors": sum(s["vectors"] for s in self.shards)}
        write_json(self.dir / "index.json", index)  # written last: its presence marks a complete cache
        return index


@dataclass
class Batch:
    x: torch.Tensor
    pair: torch.Tensor
    side: torch.Tensor
    position: torch.Tensor
    token: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


class ActivationCache:
    """Read side of a cache folder."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        if not (self.dir / "index.json").is_file():
            raise StageError(
                f"{self.dir}: no complete activation cache (index.json missing); run `safer extract`"
            )
        self.index = read_json(self.dir / "index.json")
        self._tokens: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def d(self) -> int:
        return int(self.index["d"])

    @property
    def pairs(self) -> list[str]:
        return self.index["pairs"]

    def __len__(self) -> int:
        return int(self.index["vectors"])

    def shard(self, i: int, fields: tuple[str, ...] = FIELDS) -> dict[str, torch.Tensor]:
        with safe_open(str(self.dir / self.index["shards"][i]["file"]), framework="pt") as fh:
            return {f: fh.get_tensor(f) for f in fields}

    def iter_shards(self, fields: tuple[str, ...] = FIELDS) -> Iterator[dict[str, torch.Tensor]]:
        for i in range(len(self.index["shards"])):
            yield self.shard(i, fields)

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        buffer_shards: int = 4,
        dtype=torch.float32,
        drop_last: bool = False,
    ) -> Iterator[torch.Tensor]:
        """Vectors `x` in batches. With `shuffle`, shards are visited in a seeded order and mixed within a
        buffer of `buffer_shards` shards, so memory stays bounded by the buffer, not the dataset."""
        order = list(range(len(self.index["shards"])))
        rng = random.Random(seed)
        if shuffle:
            rng.shuffle(order)
        gen = torch.Generator().manual_seed(seed)
        carry = None
        for start in range(0, len(order), buffer_shards if shuffle else 1):
            xs = [
                self.shard(i, ("x",))["x"] for i in order[start : start + (buffer_shards if shuffle else 1)]
            ]
            x = torch.cat(xs if carry is None else [carry, *xs])
            if shuffle:
                x = x[torch.randperm(x.shape[0], generator=gen)]
            n = (x.shape[0] // batch_size) * batch_size
            for i in range(0, n, batch_size):
                yield x[i : i + batch_size].to(dtype)
            carry = x[n:] if n < x.shape[0] else None
        if carry is not None and not drop_last and carry.shape[0]:
            yield carry.to(dtype)

    def batch_count(self, batch_size: int) -> int:
        """How many batches `iter_batches(batch_size)` yields (a shard's last batch may be short)."""
        return sum(-(-int(s["vectors"]) // batch_size) for s in self.index["shards"])

    def iter_batches(self, batch_size: int) -> Iterator[Batch]:
        """Every vector with its index fields, in cache order."""
        for shard in self.iter_shards():
            n = shard["x"].shape[0]
            for i in range(0, n, batch_size):
                yield Batch(**{f: shard[f][i : i + batch_size] for f in FIELDS})

    def tokens(self) -> tuple[np.ndarray, np.ndarray]:
        if self._tokens is None:
            with safe_open(str(self.dir / "tokens.safetensors"), framework="np") as fh:
                self._tokens = (fh.get_tensor("ids"), fh.get_tensor("starts"))
        return self._tokens

    def sequence(self, pair: int, side: int) -> np.ndarray:
        ids, starts = self.tokens()
        k = 2 * pair + side
        return ids[starts[k] : starts[k + 1]]


class CacheBatches:
    """A re-iterable, sized view of a cache's vectors for training: every iteration is one epoch, shuffled
    with `seed + epoch` (memory bounded by `buffer_shards`)."""

    def __init__(
        self,
        cache: ActivationCache,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        buffer_shards: int = 4,
        drop_last: bool = True,
    ):
        self.cache, self.batch_size, self.shuffle = cache, batch_size, shuffle
        self.seed, self.buffer_shards, self.drop_last = seed, buffer_shards, drop_last
        self.epoch = 0

    def _global_len(self) -> int:
        n = len(self.cache) // self.batch_size
        return max(1, n if self.drop_last else -(-len(self.cache) // self.batch_size))

    def __len__(self) -> int:
        """Batches per epoch for this process (with several processes each takes every world-th batch)."""
        return max(1, self._global_len() // distributed.world())

    def __iter__(self) -> Iterator[torch.Tensor]:
        seed = self.seed + self.epoch
        self.epoch += 1
        drop = self.drop_last and len(self.cache) >= self.batch_size
        stream = self.cache.batches(self.batch_size, self.shuffle, seed, self.buffer_shards, drop_last=drop)
        rank, world, n = distributed.rank(), distributed.world(), len(self)
        taken = 0
        for i, batch in enumerate(stream):
            if i % world == rank:
                yield batch
                taken += 1
                if taken == n:
                    return
