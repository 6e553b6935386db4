"""The commands of `safer`: `run`, one per declared stage (built from the stage registry), `inspect`, `report`
and `clear`, each an action over a run context (cli.py builds the parser and dispatches to them)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .errors import SaferError


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
    from .experiment.estimate_stages import estimate_text
    from .experiment.plan import Planner, plan_text

    decisions = Planner(ctx).plan(targets, force)
    print(plan_text(decisions))
    # to stderr: the plan on stdout stays one line a stage for scripts (docs/scaling.md's SLURM array reads it)
    print(estimate_text(ctx.run.root, ctx.cfg, [d.name for d in decisions if d.run]), file=sys.stderr)
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
