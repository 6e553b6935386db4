"""The `safer` command: a thin layer over the pipeline's stage functions. Every option is generated from
the config dataclasses (their attribute docstrings are the help text); YAML files and `--set key=value`
set the same keys."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import __version__
from .configuration import add_flags
from .errors import SaferError

log = logging.getLogger("safer_rm")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    sections: tuple[str, ...]
    action: Callable


def _pipeline(cfg, args):
    from .experiment.pipeline import Pipeline

    pipe = Pipeline(cfg, resume=True)
    pipe.preflight()
    if getattr(args, "fresh", False):
        pipe.run.reset()
    return pipe


def cmd_run(cfg, args) -> int:
    from .experiment.pipeline import Pipeline

    pipe = Pipeline(cfg, resume=args.resume)
    pipe.preflight()
    finished = [n for n, s in pipe.run.manifest["stages"].items() if s.get("status") == "done"]
    if finished and not (args.resume or args.fresh):
        raise SaferError(f"{pipe.run.root} already has {len(finished)} finished stages; pass --resume to reuse "
                         "them or --fresh to start over")
    if args.fresh:
        pipe.run.reset()
    summary = pipe.run_all()
    if summary:
        print(f"summary: {pipe.run.path('summary.json')} (total {summary['timing']['total_s']} s)")
    return 0


def cmd_train_rm(cfg, args) -> int:
    pipe = _pipeline(cfg, args)
    pipe.run.save()
    for seed in cfg.run.seeds:
        pipe.train_rm(args.variant, seed, force=True)
        print(f"reward model: {pipe.rm_dir(args.variant, seed)}")
    return 0


def cmd_evaluate(cfg, args) -> int:
    pipe = _pipeline(cfg, args)
    pipe.run.save()
    for seed in cfg.run.seeds:
        pipe.evaluate(args.variant, seed, force=True)
    pipe.summary()
    print(f"results: {pipe.run.path('eval', 'results.csv')}")
    return 0


CLEARABLE = {"cache": (), "activations": ("extract",), "sae": ("train-sae",), "features": ("features",),
             "scores": ("score",), "curated": ("curate/",), "rm": ("train-rm/",), "eval": ("evaluate/",),
             "causal": ("causal",), "audit": ("audit",)}


def cmd_clear(cfg, args) -> int:
    """Delete run folders (caches) and forget the stages that wrote them; they are rebuilt when needed."""
    pipe = _pipeline(cfg, args)
    usage = pipe.run.disk_usage()
    for folder in args.folders:
        if folder not in CLEARABLE:
            raise SaferError(f"cannot clear '{folder}'; choose from {', '.join(CLEARABLE)}")
        pipe.run.clear(folder)
        for prefix in CLEARABLE[folder]:
            pipe.run.reset(prefix)
        print(f"cleared {pipe.run.root / folder} ({usage.get(folder, 0) / 2**20:.1f} MiB)")
    pipe.run.save()
    return 0


def cmd_report(cfg, args) -> int:
    pipe = _pipeline(cfg, args)
    pipe.summary()
    print(f"report: {pipe.run.path('report', 'index.html')}")
    return 0


def _stage_command(method: str, done: str):
    def action(cfg, args) -> int:
        pipe = _pipeline(cfg, args)
        pipe.run.save()
        getattr(pipe, method)(force=True)
        pipe.summary()
        print(done.format(run=pipe.run.root))
        return 0
    return action


ALL = ("run", "data", "model", "rm", "eval", "activations", "sae", "features", "judge", "curation", "causal", "audit")
ANALYSIS = ("run", "data", "model", "rm", "activations", "sae", "features", "judge")

COMMANDS = [
    Command("run", "Run the whole pipeline from a config file: data -> reward model -> activations -> SAE -> "
            "features -> scores -> edits -> retrained reward models -> evaluation -> causal test -> audit -> report.",
            ALL, cmd_run),
    Command("train-rm", "Prepare the data and train a reward model (Bradley-Terry) into <run>/rm/<variant>/seed-<s>.",
            ("run", "data", "model", "rm"), cmd_train_rm),
    Command("evaluate", "Evaluate a reward model: RewardBench sections and held-out safety/chat accuracy.",
            ("run", "data", "model", "rm", "eval"), cmd_evaluate),
    Command("extract", "Cache the clean reward model's hidden states at the chosen layer and positions.",
            ("run", "data", "model", "rm", "activations"), _stage_command("extract", "activations: {run}/activations")),
    Command("train-sae", "Train the two-stage TopK SAE on the cached activations; report FVU, L0, dead latents and "
            "reward fidelity.", ("run", "data", "model", "rm", "activations", "sae"),
            _stage_command("train_sae", "SAE: {run}/sae")),
    Command("features", "Salience of every latent, contexts of the top ones, judge verdicts, selection of safety "
            "features, and the feature dashboard.", ANALYSIS,
            _stage_command("features", "features: {run}/features, dashboard: {run}/report/features.html")),
    Command("score", "Score every training pair with the selected features (and the clean RM's margin).",
            ANALYSIS, _stage_command("score", "scores: {run}/scores/pairs.csv")),
    Command("curate", "Write the poisoned and denoised training sets (safer, random and reward-margin selection).",
            (*ANALYSIS, "curation"), _stage_command("curate", "edited sets: {run}/curated")),
    Command("causal", "Causal test: zero the selected latents inside the RM and compare with random latents.",
            (*ANALYSIS, "eval", "causal"), _stage_command("causal", "causal test: {run}/causal/results.json")),
    Command("audit", "Poisoning audit: plant random flips and measure how well SAFER and the reward margin find them.",
            (*ANALYSIS, "audit"), _stage_command("audit", "audit: {run}/audit/results.json")),
    Command("report", "Write the results table, plots and HTML report of what the run has so far.", ALL, cmd_report),
    Command("clear", "Delete cached folders of a run (e.g. activations cache) and forget the stages that wrote "
            "them; `safer run --resume` rebuilds what is needed. Disk use per folder is in summary.json.",
            ("run",), cmd_clear),
]


def build_parser() -> argparse.ArgumentParser:
    from .config import Config

    parser = argparse.ArgumentParser(
        prog="safer",
        description="Probe reward models with sparse autoencoders (SAFER): train, interpret, score and edit "
        "safety preference data. Options come from config sections; YAML files use the same keys.",
    )
    parser.add_argument("--version", action="version", version=f"safer-rm {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    defaults = Config()
    for cmd in COMMANDS:
        sub = subs.add_parser(cmd.name, help=cmd.help, description=cmd.help,
                              )
        sub.add_argument("config", nargs="?", help="YAML config file (keys as below: section.field)")
        sub.add_argument("--config", dest="config_flag", metavar="FILE", help="YAML config file (same as the positional)")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override any config key, e.g. --set rm.lr=1e-4 --set data.sources.0.weight=2")
        sub.add_argument("--resume", action="store_true", help="reuse finished stages of the run directory")
        sub.add_argument("--fresh", action="store_true", help="forget finished stages and start over")
        sub.add_argument("--allow-pickle", action="store_true",
                         help="allow loading pickle weight files (.bin/.pt); they can execute code")
        sub.add_argument("--debug", action="store_true", help="show tracebacks")
        sub.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
        if cmd.name == "clear":
            sub.add_argument("--folders", nargs="+", required=True, choices=list(CLEARABLE),
                             help="run folders to delete")
        if cmd.name in ("train-rm", "evaluate"):
            sub.add_argument("--variant", default="clean", help="training-set variant (clean, or a curated variant)")
        add_flags(sub, Config, list(cmd.sections), defaults)
        sub.set_defaults(command_obj=cmd)
    return parser


def setup_logging(quiet: bool, run_dir: str | None = None) -> None:
    level = logging.WARNING if quiet else logging.INFO
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"  # progress bars off too
    root = logging.getLogger()
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    if run_dir:
        os.makedirs(run_dir, exist_ok=True)
        fh = logging.FileHandler(os.path.join(run_dir, "log.txt"), encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        fh.setLevel(logging.INFO)
        root.addHandler(fh)
    for noisy in ("transformers", "datasets", "httpx", "urllib3", "filelock", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug
    try:
        from .config import load_config

        path = args.config_flag or args.config
        cfg = load_config(path, args.set, namespace=args)
        if args.allow_pickle:
            cfg.model.allow_pickle = True
        setup_logging(args.quiet, str(cfg.run.path))
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
