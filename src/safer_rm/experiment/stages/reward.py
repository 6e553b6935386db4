"""Data, reward models and their evaluation: the base of the pipeline."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ... import distributed
from ...data import build_pairs, write_pairs
from ...data.pool import build_pool
from ...errors import StageError
from ...io import read_json, write_json
from ...models import Renderer, load_reward_model, load_tokenizer
from ...models.registry import resolve
from ...precision import use_bf16
from ...reward.evaluate import evaluate_sets, write_margins
from ...reward.files import EXISTING_FILE, RENDER_FILE
from ...reward.rewardbench2 import rows_from_margins, units, write_units
from ...reward.train import train_reward_model
from .. import artifacts as A
from ..context import RunContext
from ..graph import Key, instance_name
from .inputs import existing_rm, given_rm, source_files

log = logging.getLogger(__name__)


def data(ctx: RunContext, key: Key) -> dict:
    """Normalised, prompt-disjoint train/test pairs (or the pairs a sub-run was given)."""
    if ctx.given is not None:
        write_pairs(ctx.paths.train(), ctx.given.train)
        write_pairs(ctx.run.file(A.TEST), ctx.given.test)
        return ctx.given.info
    split = build_pairs(ctx.cfg.data)
    for line in split.report.lines():
        log.info("data: %s", line)
    if not split.train:
        raise StageError("no usable training pairs (see the data report above)")
    write_pairs(ctx.run.file(A.TRAIN), split.train)
    write_pairs(ctx.run.file(A.TEST), split.test)
    write_json(ctx.run.file(A.DATA_REPORT), split.report.to_json())
    for name, where in source_files(ctx).items():
        ctx.run.record_input(f"data/{name}", ctx.data.file_hash(Path(where)))
    return {
        "train": len(split.train),
        "test": len(split.test),
        "dropped": split.report.total_dropped(),
        "drops": split.report.to_json()["dropped"],
        "notes": split.report.notes,
    }


def train_rm(ctx: RunContext, key: Key) -> dict:
    """A Bradley-Terry reward model on one variant's training set, one seed (or, for the clean model, the
    existing reward model of `model.reward_model`, or the one a sub-run was given)."""
    from transformers import set_seed

    mc, rc = ctx.cfg.model, ctx.cfg.rm
    out = ctx.paths.rm(key.variant, key.seed)
    src = given_rm(ctx, key)
    if src is not None or existing_rm(ctx, key):
        info = (copy_rm(src, out) if src is not None else useexisting_rm(ctx, out)) if ctx.main else {}
        distributed.barrier()
        return info
    (out / EXISTING_FILE).unlink(missing_ok=True)  # an existing RM stood here before: this one is trained
    set_seed(key.seed)
    tok = load_tokenizer(mc.name, mc.revision, mc.trust_remote_code)
    model = load_reward_model(mc.name, tok, mc.revision, mc.trust_remote_code, mc.allow_pickle)
    renderer = Renderer(tok, mc.max_length, mc.template, mc.system_prompt, mc.min_prompt_tokens)
    rcfg = type(rc)(**{**rc.__dict__, "seed": key.seed})
    info = train_reward_model(
        model,
        tok,
        renderer,
        ctx.data.train_pairs(key.variant),
        rcfg,
        out,
        eval_pairs=ctx.data.test_pairs(),
        resume=ctx.resume,
        prefix=ctx.models.prefix_cache(),
        inputs_key=ctx.run.status(instance_name("train-rm", key)).get("fingerprint"),
    )
    if ctx.main:
        write_json(out / "train_summary.json", info)
    return {k: v for k, v in info.items() if k != "history"}


def pool(ctx: RunContext, key: Key) -> dict:
    """The evaluation pool: usable source pairs outside the run's data that share no prompt with training."""
    names = [s.name for s in ctx.cfg.data.sources]
    clash = sorted({s.name for s in ctx.cfg.eval.pool_sources} & set(names))
    if clash:
        raise StageError(f"eval.pool_sources: names {clash} are data sources already (they are in the pool)")
    built = build_pool(
        [*ctx.cfg.data.sources, *ctx.cfg.eval.pool_sources],
        ctx.cfg.data.root,
        ctx.data.train_pairs(),
        ctx.data.test_pairs(),
        ctx.cfg.eval.pool_max_per_source,
        ctx.cfg.data.seed,
        ctx.cfg.data.max_text_chars,
    )
    info = built.info
    log.info(
        "evaluation pool: %d pairs (%s) from %s",
        info["pairs"],
        ", ".join(f"{k} {v}" for k, v in info["by_kind"].items()),
        ", ".join(f"{k} {v}" for k, v in info["by_source"].items()),
    )
    write_pairs(ctx.paths.pool(), built.pairs)
    return info


def useexisting_rm(ctx: RunContext, out: Path) -> dict:
    """Stand an existing reward model in for the clean one: no training, no copy of its weights. The run
    folder holds its config, its render settings and where it lives. The settings are inferred from its
    tokenizer (chat template when it has one) and `model.*`; a reward model trained by safer-rm brings its own
    (safer_render.json), frozen blocks included, whose states are computed in the precision of its training
    (`frozen_bf16`) and cached, so it scores as in the run that trained it."""
    from transformers import AutoConfig

    mc = ctx.cfg.model
    source = resolve(mc.reward_model)
    if Path(source).is_dir():
        source = str(Path(source).resolve())  # the run may be read from another working directory
    if list(out.glob("*.safetensors")):
        raise StageError(
            f"{out} holds a reward model trained here; an existing one (model.reward_model) would replace it: "
            "use another run.dir (or --fresh)"
        )
    revision = mc.reward_model_revision
    tok = load_tokenizer(source, revision, mc.trust_remote_code)
    model = load_reward_model(
        source, tok, revision, mc.trust_remote_code, mc.allow_pickle, dtype=mc.dtype, existing=True
    )
    saved = Path(source) / RENDER_FILE
    if saved.is_file():  # trained by safer-rm: render it and run its frozen blocks as it was trained
        settings = read_json(saved)
        renderer = Renderer.from_settings(tok, settings)
        frozen = int(settings.get("frozen_layers", 0))
        frozen_bf16 = bool(settings.get("frozen_bf16", use_bf16(ctx.cfg.rm.bf16)))
    else:
        renderer = Renderer(tok, mc.max_length, mc.template, mc.system_prompt, mc.min_prompt_tokens)
        frozen, frozen_bf16 = 0, False
    weights = {f.name: ctx.data.file_hash(f) for f in sorted(Path(source).glob("*.safetensors"))}
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    AutoConfig.from_pretrained(
        source, revision=revision, trust_remote_code=mc.trust_remote_code
    ).save_pretrained(out)
    owner = {"source": source, "revision": revision, "weights": weights}
    frozen_settings = {"frozen_layers": frozen, "frozen_bf16": frozen_bf16}
    write_json(out / RENDER_FILE, {**renderer.settings(), **frozen_settings, "owner": owner})
    info = {
        "source": source,
        "revision": revision,
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "template": renderer.mode,
        "max_length": renderer.max_length,
        "render_settings": "its own (safer_render.json)" if saved.is_file() else "model.*",
        "frozen_layers_cached": frozen,
        "pad_token": tok.pad_token,
    }
    write_json(out / EXISTING_FILE, info)
    log.info(
        "reward model: the existing %s (%s, %s parameters, %s rendering) stands in for the clean one",
        source,
        info["architecture"],
        f"{info['parameters']:,}",
        renderer.mode,
    )
    return {"existing": info}


def copy_rm(source: Path, out: Path) -> dict:
    """A reward model trained elsewhere on the same pairs and settings, copied (its checkpoints left behind)."""
    if not (source / "config.json").is_file():
        raise StageError(f"{source}: the reward model to reuse has not been trained")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(source, out, ignore=shutil.ignore_patterns("checkpoints"))
    log.info("reward model: reused %s (trained on the same pairs with the same settings)", source)
    info = read_json(out / "train_summary.json") if (out / "train_summary.json").is_file() else {}
    return {**{k: v for k, v in info.items() if k != "history"}, "copied_from": str(source)}


def evaluate_model(ctx: RunContext, key: Key) -> dict:
    """Accuracy of one reward model on every evaluation set: RewardBench sections, RewardBench 2 subsets,
    held-out and pool safety/chat, the extra sets; per-pair margins (RewardBench 2: per-row values) beside it
    for the paired statistics."""
    path = ctx.paths.eval(key.variant, key.seed)
    sets = ctx.data.eval_sets()
    metrics, margins = evaluate_sets(ctx.models.scorer(key.variant, key.seed), sets)
    if ctx.main:
        write_json(path, metrics)
        for es in sets:
            if es.style == "rewardbench2" and es.name in margins:  # its per-row (Ties: per-prompt) values
                write_units(
                    path.with_suffix(f".{es.name}.csv"),
                    units(rows_from_margins(es.pairs, margins[es.name]))[0],
                )
            elif es.name in margins:
                write_margins(path.with_suffix(f".{es.name}.csv"), es.pairs, margins[es.name])
    return {"columns": {k: v["accuracy"] for k, v in metrics["columns"].items()}, "sizes": metrics["sizes"]}
