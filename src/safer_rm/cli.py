"""The `safer` command: a thin layer over the stage registry. There is one command per declared stage (its
help and options come from the declaration and the config sections it and its needs read; the attribute
docstrings of the config dataclasses are the help text), plus `run`, `report` and `clear`. YAML files and
`--set key=value` set the same keys. `compare` reads finished run directories and takes no config."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .config_flags import add_flags
from .errors import SaferError
from .logs import setup_logging

log = logging.getLogger("safer_rm")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    sections: tuple[str, ...]
    action: Callable


def _context(cfg, args, resume: bool = True):
    from .experiment.context import RunContext
    from .experiment.preflight import preflight

    ctx = RunContext.create(cfg, resume=resume)
    preflight(cfg)
    return ctx


def _dry_run(ctx, targets, force=frozenset()) -> int:
    from .experiment.plan import Planner, plan_text

    print(plan_text(Planner(ctx).plan(targets, force)))
    return 0


def cmd_run(cfg, args) -> int:
    from .experiment.runner import Runner

    ctx = _context(cfg, args, resume=args.resume)
    runner = Runner(ctx)
    targets = runner.planner.matching(args.stages) if args.stages else runner.planner.leaves()
    if args.dry_run:
        return _dry_run(ctx, targets)
    from .experiment.summary import write_summary  # the report's plots and tables: not for a dry run

    finished = ctx.run.finished()
    if finished and not (args.resume or args.fresh):
        raise SaferError(
            f"{ctx.run.root} already has {len(finished)} finished stages; pass --resume to reuse "
            "them or --fresh to start over"
        )
    if args.fresh:
        ctx.run.reset()
    runner.run(targets)
    summary = write_summary(ctx, runner.planner)
    if summary:
        from .experiment.timing import timing_lines

        print(f"summary: {ctx.run.path('summary.json')}, report: {ctx.run.path('report', 'index.html')}")
        print("\n".join(timing_lines(summary["timing"])))
    return 0


def _stage_command(name: str):
    """`safer <stage>`: reruns that stage (every instance, or one variant's), reusing what it needs."""

    def action(cfg, args) -> int:
        from .experiment.registry import BY_NAME
        from .experiment.runner import Runner

        ctx = _context(cfg, args)
        if args.fresh:
            ctx.run.reset()
        runner = Runner(ctx)
        targets = runner.planner.of_stage(name, getattr(args, "variant", None))
        if not targets:
            raise SaferError(f"stage {name} has nothing to run under this config (is it enabled?)")
        force = {st.instance(key) for st, key in targets}
        if args.dry_run:
            return _dry_run(ctx, targets, force)
        runner.run(targets, force)
        command = BY_NAME[name].command
        if command.summary:
            from .experiment.summary import write_summary

            write_summary(ctx, runner.planner)
        print(command.done.format(run=ctx.run.root))
        return 0

    return action


def cmd_inspect(cfg, args) -> int:
    """data -> reward model (existing or trained) -> activations -> SAE -> features -> scores -> detectors ->
    the inspection report and a cleaned set; no retraining sweep."""
    from .experiment.runner import Runner

    cfg.detect.enabled = True
    ctx = _context(cfg, args)
    if args.fresh:
        ctx.run.reset()
    runner = Runner(ctx)
    targets = runner.planner.of_stage("inspect")
    force = {st.instance(key) for st, key in targets}  # the report itself is cheap: always rewritten
    if args.dry_run:
        return _dry_run(ctx, targets, force)
    runner.run(targets, force)
    root = ctx.run.root
    print(
        f"suspects: {root}/inspect/suspects.csv, report: {root}/inspect/report.html, cleaned set: {root}/inspect/cleaned"
    )
    return 0


def cmd_clear(cfg, args) -> int:
    """Delete run folders (caches) and forget the stages that wrote them; they are rebuilt when needed."""
    from .experiment.locks import holder_text, is_locked
    from .experiment.registry import CLEARABLE

    ctx = _context(cfg, args)
    usage = ctx.run.disk_usage()
    for folder in args.folders:
        stages = CLEARABLE[folder]
        busy = [
            (n, h)
            for n in ctx.run.manifest["stages"]
            for s in stages
            if (n == s or n.startswith(s + "/")) and (h := is_locked(ctx.run.root, n))
        ]
        if busy:
            raise SaferError(
                f"cannot clear '{folder}': stage {busy[0][0]} is being run by {holder_text(busy[0][1])}"
            )
        ctx.run.clear(folder)
        for s in stages:
            ctx.run.reset(s + "/")
            if ctx.run.status(s):
                ctx.run.record(s, None)
        print(f"cleared {ctx.run.root / folder} ({usage.get(folder, 0) / 2**20:.1f} MiB)")
    ctx.run.save()
    return 0


def cmd_report(cfg, args) -> int:
    from .experiment.summary import write_summary

    ctx = _context(cfg, args)
    regenerate = "safer " + shlex.join(args.argv) if args.markdown else ""
    write_summary(ctx, markdown=args.markdown, regenerate=regenerate)
    print(f"report: {ctx.run.path('report', 'index.html')}, results: {ctx.run.path('report', 'results.md')}")
    if args.markdown:
        print(f"results as Markdown: {args.markdown}")
    return 0


ALL = (
    "run",
    "data",
    "model",
    "rm",
    "eval",
    "activations",
    "sae",
    "attribution",
    "features",
    "judge",
    "curation",
    "causal",
    "audit",
    "detect",
    "inspect",
)


def commands() -> list[Command]:
    """`run`, one command per declared stage (with the sections it and everything it needs read), `report`,
    `clear`."""
    from .experiment.registry import BY_NAME, CLEARABLE, STAGES, command_sections

    out = [
        Command(
            "run",
            "Run the whole pipeline from a config file: "
            + " -> ".join(st.name for st in STAGES)
            + " -> report (each stage per variant and seed where it says so). --dry-run shows what would "
            "run and why; --stages runs some stages (and what they need) only.",
            ALL,
            cmd_run,
        )
    ]
    out += [
        Command(st.name, st.command.help, ("run", *command_sections(st)), _stage_command(st.name))
        for st in STAGES
        if st.command
    ]
    out += [
        Command(
            "inspect",
            "Audit a preference dataset with a reward model (an existing one via --model.reward_model, or one "
            "trained here): data -> RM -> activations -> SAE -> features -> scores -> detectors (SAFER, in-sample "
            "and out-of-fold margin, seed ensemble, SAE probe, combinations) -> inspect/report.html, "
            "inspect/suspects.csv and a cleaned set (inspect/cleaned: Parquet, JSONL, dataset card). No "
            "retraining sweep.",
            ("run", *command_sections(BY_NAME["inspect"])),
            cmd_inspect,
        ),
        Command(
            "report",
            "Write the results table, plots and HTML report of what the run has so far.",
            ALL,
            cmd_report,
        ),
        Command(
            "clear",
            "Delete cached folders of a run (e.g. activations cache) and forget the stages that "
            f"wrote them ({', '.join(CLEARABLE)}); `safer run --resume` rebuilds what is needed. Disk use "
            "per folder is in summary.json.",
            ("run",),
            cmd_clear,
        ),
    ]
    return out


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
