"""`safer compare BASE_RUN --option LABEL=RUN_DIR ...`: the feature-selection options of one experiment side
by side (options.py computes, option_tables.py writes the tables). It reads finished run directories, so it
takes no config: its own arguments, and nothing heavy imported until it runs (building the parser stays fast)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SaferError

COMPARE_HELP = (
    "Compare feature-selection options: run directories of one experiment that differ only in their "
    "`features.*` settings (same data split, evaluation sets, seeds, and clean, random and reward-margin "
    "variants). Prints Markdown tables: accuracy per mode and ratio with 95-percent intervals (bootstrap over "
    "seeds, then pairs); each option's SAFER variant minus the base run's clean, random and reward-margin "
    "variants and minus the base option, in points, paired by seed and pair id; every option's causal test, "
    "audit (the safer detector's paired AUROC difference on the same planted set) and selection."
)


def cmd_compare(args) -> int:
    """`safer compare`: the options' tables on stdout (and in --markdown FILE), every number in --json FILE."""
    from ..io import write_json, write_text
    from .option_tables import markdown
    from .options import compare_options

    options = dict(args.option)
    if args.base_label in options:
        raise SaferError(
            f"--option {args.base_label}=... names the base label; pass the base run as BASE_RUN "
            "(or choose another --base-label)"
        )
    options = {args.base_label: args.base, **options}
    result = compare_options(
        args.base, options, args.columns, args.bootstrap, args.seed, base_label=args.base_label
    )
    text = markdown(result)
    print(text)
    if args.json:
        write_json(args.json, result)
    if args.markdown:
        write_text(args.markdown, text)
    return 0


def _labelled_run(text: str) -> tuple[str, Path]:
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=RUN_DIR, got {text!r}")
    return label, Path(path)


def add_compare(subs) -> None:
    """`safer compare BASE_RUN --option LABEL=RUN ...`: its own arguments, no config sections."""
    short = "Compare feature-selection options (runs that differ only in features.*), with paired intervals."
    sub = subs.add_parser("compare", help=short, description=COMPARE_HELP)
    sub.add_argument("base", type=Path, metavar="BASE_RUN", help="the base option's run directory")
    sub.add_argument(
        "--option",
        type=_labelled_run,
        action="append",
        default=[],
        metavar="LABEL=RUN_DIR",
        help="another option's run directory (repeat for several)",
    )
    sub.add_argument("--base-label", default="firing", help="the base run's label (default: firing)")
    sub.add_argument(
        "--columns",
        nargs="+",
        metavar="COLUMN",
        help="accuracy columns, e.g. Safety 'heldout safety' (default: every column all runs have, "
        "RewardBench sections first, then held-out and pool columns, then any other)",
    )
    sub.add_argument("--json", type=Path, metavar="FILE", help="also write every number as JSON to FILE")
    sub.add_argument("--markdown", type=Path, metavar="FILE", help="also write the tables to FILE")
    sub.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates (default: 2000)")
    sub.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    sub.add_argument("--debug", action="store_true", help="show tracebacks")
    sub.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub.set_defaults(without_config=cmd_compare)
