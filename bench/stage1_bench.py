"""SAE stage 1's two batch sources side by side on one run: the `general` activation cache (read, shuffled in a
buffer of shards) against the stream (the clean reward model's forward pass up to the SAE's layer, standardised,
shuffled in a buffer of `activations.stream_buffer` vectors), each drawing `sae.stage1_tokens` vectors in
`sae.batch_size` batches as SAE stage 1 does, interleaved over rounds so that other load hits both alike. It
needs a run whose `extract` wrote the general cache (`activations.general_source: cache`), e.g. a demo run:

    python -m bench.stage1_bench configs/demo.yaml --run runs/demo [--rounds 3]

Prints the median seconds of each and their ratio (stream / cache), with the vectors' count per epoch. The
SAE's own step is the same either way; what stage 1 costs on top of it is this."""

from __future__ import annotations

import argparse
import json
import logging

from bench.common import interleaved, timed
from safer_rm.config import load_config
from safer_rm.experiment.context import RunContext
from safer_rm.experiment.graph import CLEAN
from safer_rm.experiment.stages.stage1 import stage1_batches


def draw(batches, steps: int) -> None:
    served = 0
    while served < steps:
        for _ in batches:
            served += 1
            if served == steps:
                return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--run", required=True, help="a run folder with the general cache and the clean RM")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sources = {}
    for source in ("cache", "stream"):
        cfg = load_config(args.config, [f"run.dir={args.run}", f"activations.general_source={source}"])
        sources[source] = cfg
    ctx = RunContext.create(sources["cache"])
    ctx.device  # noqa: B018  (threads set as a stage would)
    rm = ctx.models.reward_model(CLEAN, ctx.seed0)
    layer = ctx.run.info("extract")["layer"]
    steps = sources["cache"].sae.stage1_steps()
    made = {}
    for source, cfg in sources.items():
        ctx.cfg = cfg
        made[source] = stage1_batches(ctx, rm, layer)
    med = interleaved({s: (lambda b=b: timed(lambda: draw(b, steps))) for s, b in made.items()}, args.rounds)
    out = {
        "steps": steps,
        "batch_size": sources["cache"].sae.batch_size,
        "batches_per_epoch": {s: len(b) for s, b in made.items()},
        "median_s": {s: round(v, 2) for s, v in med.items()},
        "stream_over_cache": round(med["stream"] / med["cache"], 2),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
