"""The `safer` command: a thin layer over the stage registry. There is one command per declared stage (its
help and options come from the declaration and the config sections it and its needs read; the attribute
docstrings of the config dataclasses are the help text), plus `run`, `report` and `clear`. YAML files and
`--set key=value` set the same keys. `compare` reads finished run directories and takes no config."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .cli_commands import (  # noqa: F401  (re-exported: the commands live beside)
    ALL,
    Command,
    cmd_clear,
    cmd_inspect,
    cmd_report,
    cmd_run,
    commands,
)
from .config_flags import add_flags
from .errors import SaferError
from .logs import setup_logging

log = logging.getLogger("safer_rm")


def build_parser() -> argparse.ArgumentParser:
    from .config import Config
    from .experiment.option_command import add_compare
    from .experiment.registry import CLEARABLE

    parser = argparse.ArgumentParser(
        prog="safer",
        description="Probe reward models with sparse autoencoders (SAFER): train, interpret, score and edit "
        "safety preference data. Options come from config sections; YAML files use the same keys.",
    )
    parser.add_argument("--version", action="version", version=f"safer-rm {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    defaults = Config()
    for cmd in commands():
        sub = subs.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        sub.add_argument("config", nargs="?", help="YAML config file (keys as below: section.field)")
        sub.add_argument(
            "--config", dest="config_flag", metavar="FILE", help="YAML config file (same as the positional)"
        )
        sub.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override any config key, e.g. --set rm.lr=1e-4 --set data.sources.0.weight=2",
        )
        sub.add_argument("--resume", action="store_true", help="reuse finished stages of the run directory")
        sub.add_argument("--fresh", action="store_true", help="forget finished stages and start over")
        sub.add_argument(
            "--allow-pickle",
            action="store_true",
            help="allow loading pickle weight files (.bin/.pt); they can execute code",
        )
        sub.add_argument("--debug", action="store_true", help="show tracebacks")
        sub.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
        if cmd.name not in ("report", "clear"):
            sub.add_argument(
                "--dry-run",
                action="store_true",
                help="print the stages in run order, each 'run' or 'reuse' and why; change nothing",
            )
        if cmd.name == "run":
            sub.add_argument(
                "--stages",
                action="append",
                metavar="PATTERN",
                help="run only the stage instances matching this glob (and what they need), e.g. "
                "'train-rm/poison-*/seed-1'; repeatable",
            )
        if cmd.name == "report":
            sub.add_argument(
                "--markdown",
                type=Path,
                metavar="FILE",
                help="also write the results (accuracies with intervals, paired differences, commit, machine, "
                "seeds) as Markdown to FILE, e.g. docs/results.md; every report writes report/results.md",
            )
        if cmd.name == "clear":
            sub.add_argument(
                "--folders", nargs="+", required=True, choices=list(CLEARABLE), help="run folders to delete"
            )
        if cmd.name in ("train-rm", "evaluate"):
            sub.add_argument(
                "--variant", default="clean", help="training-set variant (clean, or a curated variant)"
            )
        add_flags(sub, Config, list(cmd.sections), defaults)
        sub.set_defaults(command_obj=cmd)
    add_compare(subs)  # reads finished run directories: its own arguments, no config sections
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # how this command was called: what regenerates a file it writes
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug
    try:
        without_config = getattr(args, "without_config", None)
        if without_config is not None:  # a command over finished run directories
            setup_logging(args.quiet)
            return without_config(args)
        from .config import load_config

        path = args.config_flag or args.config
        cfg = load_config(path, args.set, namespace=args)
        if args.allow_pickle:
            cfg.model.allow_pickle = True
        setup_logging(args.quiet, None if getattr(args, "dry_run", False) else str(cfg.run.path))
        return args.command_obj.action(cfg, args)
    except SaferError as err:
        if debug:
            raise
        print(f"safer {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"safer {args.command}: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
