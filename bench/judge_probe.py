"""How well each judge tells plainly safety-related latents from plainly unrelated ones (AUROC on the probe
set of `safer_rm.features.judges.probe`, cut from the offline mirror).

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/judge_probe.py                  # embedding, none, hf (SmolLM2)
    PYTHONPATH=src python bench/judge_probe.py --judges embedding                 # just the default judge
    PYTHONPATH=src python bench/judge_probe.py --calibrate                        # the embedding anchors' source
    PYTHONPATH=src python bench/judge_probe.py --judges openai --openai-base-url http://localhost:8000/v1 \
        --openai-model Qwen/Qwen2.5-7B-Instruct --api-key-env ""                  # any served chat model

`run()` returns {judge: auroc}; the command prints that with details (per-class mean scores, seconds) as
JSON. The `none` judge scores nothing, so its AUROC is 0.5 by construction (every latent tied). No cache is
used: every number is measured in this run. Needs the mirror (SAFER_DATA_ROOT or ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from safer_rm.data.load import data_root
from safer_rm.features.judges import JudgeConfig, make_judge
from safer_rm.features.judges.probe import (
    anchors_from_margins,
    build_calibration,
    build_probe,
    evaluate_probe,
)
from safer_rm.metrics import auroc

log = logging.getLogger("bench.judge_probe")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JUDGES = ("embedding", "none", "hf")


def default_root() -> Path:
    return Path(data_root(str(ROOT.parent / "shared" / "data")))


def judge_config(kind: str, args: argparse.Namespace | None = None) -> JudgeConfig:
    cfg = JudgeConfig(kind=kind, cache=False)
    if kind == "hf":
        cfg.model = getattr(args, "hf_model", None) or "smollm2"
        cfg.hf_explanation_tokens = (
            0  # the score alone is measured; explanations cost ~50 forward passes each
        )
    if kind == "openai" and args is not None:
        cfg.base_url, cfg.model, cfg.api_key_env = args.openai_base_url, args.openai_model, args.api_key_env
    return cfg


def measure(
    judges: tuple[str, ...] = DEFAULT_JUDGES, root: Path | None = None, args: argparse.Namespace | None = None
) -> dict:
    t0 = time.perf_counter()
    probe = build_probe(root or default_root())
    out: dict = {
        "probe": {
            "latents": len(probe),
            "safety": int(probe.labels.sum()),
            "unrelated": int((probe.labels == 0).sum()),
            "seconds": round(time.perf_counter() - t0, 2),
        },
        "judges": {},
    }
    for kind in judges:
        t = time.perf_counter()
        judge = make_judge(judge_config(kind, args), progress=False)
        loaded = time.perf_counter()
        verdicts = judge.judge(probe.items)
        done = time.perf_counter()
        result = evaluate_probe(verdicts, probe)
        result.update(
            model=judge.model,
            load_seconds=round(loaded - t, 2),
            judge_seconds=round(done - loaded, 2),
            statuses={s: sum(v.status == s for v in verdicts) for s in sorted({v.status for v in verdicts})},
        )
        out["judges"][kind] = result
        log.info("%s: AUROC %.3f (%s)", kind, result["auroc"], json.dumps(result))
    return out


def run(judges: tuple[str, ...] = DEFAULT_JUDGES, root: Path | None = None) -> dict:
    """{judge: AUROC on the probe set}."""
    return {kind: r["auroc"] for kind, r in measure(judges, root)["judges"].items()}


def calibrate(root: Path | None = None) -> dict:
    """The embedding judge's margins on the calibration set (rows the probe never uses) and the anchors that
    `anchors_from_margins` reads off them (the defaults in JudgeConfig.embedding_anchors)."""
    cal = build_calibration(root or default_root())
    judge = make_judge(JudgeConfig(kind="embedding", cache=False), progress=False)
    margins = np.array([v.extra["margin"] for v in judge.judge(cal.items)])
    pct = (10, 25, 50, 75, 90)
    return {
        "latents": len(cal),
        "margin_auroc": round(auroc(margins, cal.labels), 4),
        "safety_margin_percentiles": dict(
            zip(map(str, pct), np.round(np.percentile(margins[cal.labels == 1], pct), 4).tolist())
        ),
        "chat_margin_percentiles": dict(
            zip(map(str, pct), np.round(np.percentile(margins[cal.labels == 0], pct), 4).tolist())
        ),
        "anchors": anchors_from_margins(margins, cal.labels),
        "anchors_in_use": list(JudgeConfig().embedding_anchors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--judges", default=",".join(DEFAULT_JUDGES), help="comma-separated judge kinds")
    parser.add_argument(
        "--root", type=Path, default=None, help="data root (default: SAFER_DATA_ROOT or ../shared/data)"
    )
    parser.add_argument(
        "--calibrate", action="store_true", help="print the embedding judge's calibration instead"
    )
    parser.add_argument("--hf-model", default="smollm2", help="hf judge model (HF id or local folder)")
    parser.add_argument("--openai-base-url", default="https://api.openai.com/v1")
    parser.add_argument("--openai-model", default="gpt-4o")
    parser.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="NAME of the variable holding the key"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.calibrate:
        result = calibrate(args.root)
    else:
        judges = tuple(j.strip() for j in args.judges.split(",") if j.strip())
        detail = measure(judges, args.root, args)
        result = {"auroc": {k: r["auroc"] for k, r in detail["judges"].items()}, **detail}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
