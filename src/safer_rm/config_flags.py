"""Command-line flags generated from the config dataclasses: `--section.field VALUE` for the sections a
command reads, with the attribute docstrings as help text and the defaults shown; parsed values go through
the same `set_path` (and so the same checks) as `--set` and YAML files."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Literal, get_args, get_origin

from .typed_config import field_help, set_path, type_hints, type_name


def _leaf_fields(cls: type, prefix: str = ""):
    hints = type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(tp):
            yield from _leaf_fields(tp, key)
        elif get_origin(tp) is list and dataclasses.is_dataclass((get_args(tp) or (None,))[0]):
            continue  # lists of sections (data sources) are set in YAML or by index through --set
        else:
            yield cls, f, tp, key


def add_flags(parser: argparse.ArgumentParser, cls: type, sections: list[str], defaults: Any) -> None:
    """Add `--section.field` flags for the chosen sections of config class `cls`, with help text from
    the attribute docstrings and the current (default or YAML) values shown."""
    hints = type_hints(cls)
    for section in sections:
        sub_cls = hints[section]
        group = parser.add_argument_group(
            f"{section} options", (sub_cls.__doc__ or "").strip().splitlines()[0] if sub_cls.__doc__ else None
        )
        current = getattr(defaults, section)
        for owner, f, tp, key in _leaf_fields(sub_cls, section):
            value = current
            for part in key.split(".")[1:]:
                value = getattr(value, part)
            text = field_help(owner, f.name)
            group.add_argument(
                f"--{key}",
                dest=f"cfg::{key}",
                metavar=type_name(tp).upper().replace(" ", "_")
                if get_origin(tp) is not Literal
                else "{" + type_name(tp).replace("|", ",") + "}",
                default=argparse.SUPPRESS,
                help=f"{text} (default: {value!r})".replace("%", "%%"),
            )


def apply_flags(cfg: Any, namespace: argparse.Namespace) -> None:
    for name, raw in vars(namespace).items():
        if name.startswith("cfg::"):
            set_path(cfg, name[5:], raw, source="command line")
