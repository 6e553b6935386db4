"""Raw rows from files (jsonl / json / parquet / csv, gzipped or not) or a `datasets` hub id or local
dataset folder, each with the location a user needs to find it again (file + line, or row)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".ndjson")


@dataclass(frozen=True)
class Location:
    file: str
    line: int | None = None
    row: int | None = None

    def error(self, message: str, field: str | None = None) -> DataError:
        return DataError(self.file, message, line=self.line, field=field, row=self.row)

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file}:{self.line}"
        return f"{self.file} row {self.row}" if self.row is not None else self.file


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix in FILE_SUFFIXES:
        if name.endswith(suffix):
            return "jsonl" if suffix == ".ndjson" else suffix[1:]
    raise DataError(
        str(path), f"unknown file type; expected one of {', '.join(FILE_SUFFIXES)} (optionally .gz)"
    )


def _open_binary(path: Path):
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def _iter_jsonl(path: Path) -> Iterator[tuple[Any, Location]]:
    line_no = 0
    try:
        with _open_binary(path) as fh:
            for line_no, raw in enumerate(fh, 1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(str(path), f"not UTF-8 text (byte {err.start})", line=line_no) from None
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as err:
                    raise DataError(
                        str(path), f"invalid JSON: {err.msg} (column {err.colno})", line=line_no
                    ) from None
                yield row, Location(str(path), line=line_no)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(str(path), f"corrupt or truncated gzip data ({err})", line=line_no + 1) from None


def _read_text(path: Path, encoding: str) -> str:
    """A whole (possibly gzipped) file as text; DataError naming the file (and line) when it cannot be."""
    try:
        with _open_binary(path) as fh:
            data = fh.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(str(path), f"corrupt or truncated gzip data ({err})") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(str(path), f"not UTF-8 text (byte {err.start})", line=line) from None


def _iter_json(path: Path) -> Iterator[tuple[Any, Location]]:
    text = _read_text(path, "utf-8")
    if not text.strip():
        return
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        # a .json file that is really JSON lines
        if err.msg == "Extra data":
            yield from _iter_jsonl(path)
            return
        raise DataError(str(path), f"invalid JSON: {err.msg} (column {err.colno})", line=err.lineno) from None
    if isinstance(obj, dict):
        lists = [k for k, v in obj.items() if isinstance(v, list)]
        if len(lists) == 1 and all(not isinstance(v, list) for k, v in obj.items() if k != lists[0]):
            obj = obj[lists[0]]
        else:
            obj = [obj]
    if not isinstance(obj, list):
        raise DataError(str(path), "a JSON file must hold a list of rows (or an object with one list)")
    for i, row in enumerate(obj):
        yield row, Location(str(path), row=i)


def _iter_parquet(path: Path) -> Iterator[tuple[Any, Location]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(str(path), f"not a readable parquet file ({err})") from None
    i = 0
    for batch in table.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield row, Location(str(path), row=i)
            i += 1


def _iter_csv(path: Path) -> Iterator[tuple[Any, Location]]:
    text = _read_text(path, "utf-8-sig")
    csv.field_size_limit(1 << 30)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            if None in row:
                raise DataError(str(path), "more values than header columns", line=reader.line_num)
            yield row, Location(str(path), line=reader.line_num)
    except csv.Error as err:
        raise DataError(str(path), f"invalid CSV: {err}", line=reader.line_num) from None


def iter_file_rows(path: str | Path) -> Iterator[tuple[Any, Location]]:
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), "file not found")
    if path.is_dir():
        raise DataError(str(path), "is a folder; give a file, or a dataset folder through the hub loader")
    if path.stat().st_size == 0:
        raise DataError(str(path), "empty file")
    kind = _kind(path)
    reader = {"jsonl": _iter_jsonl, "json": _iter_json, "parquet": _iter_parquet, "csv": _iter_csv}[kind]
    yield from reader(path)


def iter_hub_rows(
    name: str,
    config: str | None = None,
    split: str = "train",
    data_dir: str | None = None,
    revision: str | None = None,
) -> Iterator[tuple[Any, Location]]:
    """Rows of a `datasets` dataset: a hub id, or a local folder in the hub layout."""
    import datasets

    label = f"{name}[{split}]"
    try:
        ds = datasets.load_dataset(name, config, split=split, data_dir=data_dir, revision=revision)
    except FileNotFoundError as err:
        raise DataError(label, f"dataset not found ({err})") from None
    except ValueError as err:
        raise DataError(label, f"cannot load dataset: {err}") from None
    except Exception as err:  # network failures, missing splits; keep the reason, drop the traceback
        raise DataError(label, f"cannot load dataset: {type(err).__name__}: {err}") from None
    for i, row in enumerate(ds):
        yield row, Location(label, row=i)
