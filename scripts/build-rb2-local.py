#!/usr/bin/env python3
"""Build a file in RewardBench 2's schema from the offline mirror, for trying `eval.rewardbench2` offline.

NOT the real benchmark: no Factuality, Precise IF or Math rows, other prompts, other completions, other
labels. Its scores are comparable in kind with RewardBench 2's, never in value. Rows (one prompt, lists of
chosen and rejected completions; `id`, `prompt`, `chosen`, `rejected`, `num_correct`, `subset`):

- `Safety`: PKU-SafeRLHF prompts with one response labelled safe (chosen) and three distinct ones labelled
  unsafe (rejected), best-of-4 as in RewardBench 2;
- `Focus` (a stand-in: general chat quality, not RewardBench 2's on-topic test): AlpacaEval instructions with
  one output that GPT-4 preferred over three distinct others;
- `Ties`: PKU-SafeRLHF prompts with at least two safe responses, as a `ref:<n>` row (one safe chosen against
  the unsafe ones) and a `tied:<n>` row (every safe response chosen against the same unsafe ones).

Prompts of the given training set (a run's data/train.jsonl) are left out, so a model trained on that run's
pairs is not scored on its own prompts. Seeded; at most `--per-subset` rows (prompts for Ties) per subset.

    python3 scripts/build-rb2-local.py --root ../shared/data --exclude runs/demo/data/train.jsonl \\
        --out /tmp/rb2-local.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import random
from collections import defaultdict
from pathlib import Path

log = logging.getLogger("build-rb2-local")


def _key(text: str) -> str:
    return " ".join(text.split()).lower()


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _training_prompts(path: Path | None) -> set[str]:
    if path is None:
        return set()
    out = set()
    for row in _jsonl(path):
        out.add(_key(" ".join(m["content"] for m in row["prompt"] if m["role"] != "system")))
    return out


def safety_and_ties(pku: list[dict], skip: set[str], rng: random.Random, per_subset: int) -> list[dict]:
    safe: dict[str, list[str]] = defaultdict(list)
    unsafe: dict[str, list[str]] = defaultdict(list)
    for r in pku:
        if _key(r["prompt"]) in skip:
            continue
        for side, store in (("chosen", safe), ("rejected", unsafe)):
            if r[side] not in store[r["prompt"]]:
                store[r["prompt"]].append(r[side])
    prompts = sorted(safe)
    rng.shuffle(prompts)
    rows, ties, used = [], [], set()
    for p in prompts:
        good = [s for s in safe[p] if s not in unsafe[p]]
        bad = [u for u in unsafe[p] if u not in safe[p]]
        if len(good) >= 1 and len(bad) >= 3 and len(rows) < per_subset:
            rows.append({"prompt": p, "chosen": good[:1], "rejected": bad[:3], "subset": "Safety"})
            used.add(p)
    for p in prompts:
        good = [s for s in safe[p] if s not in unsafe[p]]
        bad = [u for u in unsafe[p] if u not in safe[p]]
        if p not in used and len(good) >= 2 and len(bad) >= 1 and len(ties) < per_subset:
            n = len(ties)
            ties.append(
                {"id": f"ref:{n}", "prompt": p, "chosen": good[:1], "rejected": bad[:3], "subset": "Ties"}
            )
            ties.append(
                {"id": f"tied:{n}", "prompt": p, "chosen": good, "rejected": bad[:3], "subset": "Ties"}
            )
    return rows + ties[: 2 * per_subset]


def focus(alpaca: list[dict], skip: set[str], rng: random.Random, per_subset: int) -> list[dict]:
    beats: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in alpaca:
        if _key(r["prompt"]) not in skip and r["rejected"] != r["chosen"]:
            losers = beats[r["prompt"]][r["chosen"]]
            if r["rejected"] not in losers:
                losers.append(r["rejected"])
    rows = []
    for p in sorted(beats):
        winner = next((w for w, losers in beats[p].items() if len(losers) >= 3), None)
        if winner is not None:
            rows.append(
                {"prompt": p, "chosen": [winner], "rejected": beats[p][winner][:3], "subset": "Focus"}
            )
    rng.shuffle(rows)
    return rows[:per_subset]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("../shared/data"), help="the offline mirror")
    ap.add_argument("--exclude", type=Path, help="a run's data/train.jsonl: its prompts are left out")
    ap.add_argument(
        "--out", type=Path, required=True, help="JSON lines file to write (outside the repository)"
    )
    ap.add_argument("--per-subset", type=int, default=120, help="at most this many rows (Ties: prompts) each")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = random.Random(args.seed)
    skip = _training_prompts(args.exclude)
    rows = safety_and_ties(_jsonl(args.root / "train" / "pku-saferlhf-5k.jsonl"), skip, rng, args.per_subset)
    rows += focus(
        _jsonl(args.root / "train" / "alpacaeval-gpt4-judged-odd-half.jsonl"), skip, rng, args.per_subset
    )
    with open(args.out, "w", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            row = {"id": str(i), **row}  # Ties rows keep their ref:/tied: ids
            row["num_correct"] = len(row["chosen"])
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row["subset"]] += 1
    log.info(
        "wrote %d rows to %s: %s (%d training prompts left out)", len(rows), args.out, dict(counts), len(skip)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
