"""Typed configuration: one set of dataclasses drives YAML files, command-line flags, `--set key=value`
overrides and `--help` text (taken from the attribute docstrings under each field).

Every value passes through `coerce`, so a wrong type, an unknown key or an out-of-range value gives the
same one-line `ConfigError` naming the key, wherever it came from.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from .errors import ConfigError

_MISSING = object()


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def field_help(cls: type, name: str) -> str:
    """The attribute docstring written under a dataclass field (EleutherAI/simple-parsing convention)."""
    from simple_parsing.docstring import get_attribute_docstring

    for klass in cls.__mro__:
        if not dataclasses.is_dataclass(klass) or name not in getattr(klass, "__annotations__", {}):
            continue
        try:
            doc = get_attribute_docstring(klass, name)
        except Exception:  # pragma: no cover - source unavailable (zipapp, REPL)
            return ""
        text = doc.docstring_below or doc.comment_inline or doc.comment_above or ""
        return " ".join(text.split())
    return ""


def type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "|".join(str(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        return f"list of {type_name(inner)}"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str, source: str | None = None) -> Any:
    """Check `value` against the annotation `tp` and convert where it is lossless (int -> float,
    "1e-4" -> float). Raise ConfigError naming `key` otherwise."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(key, f"must not be null (expected {type_name(tp)})", source)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key, source)
            except ConfigError as err:
                errors.append(err)
        raise (
            errors[0]
            if len(errors) == 1
            else ConfigError(key, f"expected {type_name(tp)}, got {value!r}", source)
        )
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(map(str, choices))}; got {value!r}", source)
        return value
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list | tuple):
            raise ConfigError(key, f"expected a list, got {type(value).__name__}", source)
        return [coerce(v, inner, f"{key}.{i}", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {type(value).__name__}", source)
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping of {tp.__name__} fields, got {value!r}", source)
        return from_dict(tp, value, prefix=key, source=source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {value!r}", source)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(key, f"expected an integer, got {value!r}", source)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(key, f"expected a number, got {value!r}", source)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(key, f"expected a string, got {value!r}", source)
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigError(key, f"expected a path, got {value!r}", source)
    return value


def _unknown(key: str, name: str, known: list[str], source: str | None) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
    return ConfigError(key, f"unknown key{hint}", source)


def from_dict(cls: type, data: dict, prefix: str = "", source: str | None = None):
    """Build dataclass `cls` from a mapping, checking every key and type."""
    if not isinstance(data, dict):
        raise ConfigError(prefix or "<root>", f"expected a mapping, got {type(data).__name__}", source)
    hints = type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in names:
            raise _unknown(key, str(name), names, source)
        kwargs[name] = coerce(value, hints[name], key, source)
    try:
        obj = cls(**kwargs)
    except TypeError as err:  # a required field is missing
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs]
        raise ConfigError(
            f"{prefix}.{missing[0]}" if prefix and missing else prefix or "<root>", f"missing ({err})", source
        ) from None
    return obj


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_cli_value(text: str, tp: Any) -> Any:
    """A command-line string as YAML (numbers, booleans, lists), except for plain string fields."""
    if tp is str or (get_origin(tp) is Literal and all(isinstance(a, str) for a in get_args(tp))):
        return text
    if (
        get_origin(tp) in (Union, types.UnionType)
        and str in get_args(tp)
        and text.lower() not in ("null", "none", "~")
    ):
        return text
    if text.lower() in ("none", "null", "~"):
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def set_path(obj: Any, dotted: str, raw: Any, source: str = "--set", from_cli: bool = True) -> None:
    """Apply `a.b.c = raw` to a dataclass tree (list items by index: data.sources.0.weight)."""
    parts = dotted.split(".")
    target = obj
    for i, part in enumerate(parts):
        key = ".".join(parts[: i + 1])
        last = i == len(parts) - 1
        if isinstance(target, list):
            if not part.isdigit() or int(part) >= len(target):
                raise ConfigError(key, f"no list item {part} (list has {len(target)})", source)
            if last:
                raise ConfigError(key, "cannot replace a whole list item; set its fields", source)
            target = target[int(part)]
            continue
        if not dataclasses.is_dataclass(target):
            raise ConfigError(key, "is not a section", source)
        names = [f.name for f in dataclasses.fields(target)]
        if part not in names:
            raise _unknown(key, part, names, source)
        if last:
            tp = type_hints(type(target))[part]
            value = parse_cli_value(raw, tp) if from_cli and isinstance(raw, str) else raw
            setattr(target, part, coerce(value, tp, key, source))
        else:
            target = getattr(target, part)


def parse_set(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(item, "--set expects key=value", "--set")
        key, value = item.split("=", 1)
        out.append((key.strip(), value))
    return out


def validate(obj: Any, prefix: str = "", source: str | None = None) -> None:
    """Call `check()` on every dataclass of the tree (range checks that types cannot express)."""
    if not dataclasses.is_dataclass(obj):
        return
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except ConfigError as err:
            raise err.within(prefix, source) from None
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        if isinstance(value, list):
            for i, item in enumerate(value):
                validate(item, f"{key}.{i}", source)
        else:
            validate(value, key, source)


def require(
    obj: Any, keys: tuple[str, ...], *, above: float | None = None, at_least: float | None = None
) -> None:
    """Range check shared by the config sections: each key must be > `above` or >= `at_least`."""
    for key in keys:
        value = getattr(obj, key)
        if above is not None and not value > above:
            raise ConfigError(key, f"must be > {above}, got {value}")
        if at_least is not None and not value >= at_least:
            raise ConfigError(key, f"must be >= {at_least}, got {value}")


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("<file>", "config file not found", str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(
            "<file>", f"invalid YAML{line}: {getattr(err, 'problem', err)}", str(path)
        ) from None
    except UnicodeDecodeError:
        raise ConfigError("<file>", "not UTF-8 text", str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("<root>", "a config file must be a mapping of sections", str(path))
    return data
