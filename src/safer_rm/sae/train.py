"""SAFER's SAE trainer over cached activations: it consumes [B, d] batches (already standardised per vector
upstream) and never sees a language model.

One optimiser step:
    acts, indices = TopK_k(ReLU(W_enc (x - b_pre) + b_lat))   (encoder.py: sparsify's forward, faster backward)
    x_hat = coder.decode(acts, indices)                        (sparsify's embedding_bag decoder)
    loss = NMSE(x, x_hat) + auxk_alpha * AuxK(latents silent for > dead_after vectors) / sum ||x||^2
    backward; remove the gradient parallel to each decoder direction; Adam(0.9, 0.999); LR schedule step
    every `renorm_every` steps (and at the end): decoder directions back to unit length.

AuxK (auxk.py) is divided by sum ||x||^2, the NMSE's denominator for standardised vectors, so `auxk_alpha`
keeps its usual weight relative to the main loss (sparsify divides by the FVU's batch variance instead).
A latent "fires" when its activation is nonzero; counters restart with each stage.
LR: linear warm-up over `warmup_frac` of the steps, constant, linear decay to zero over the last `decay_frac`.
Evaluation and checkpointing are hooks passed in by the caller (see hooks.py), not part of the loop.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Literal

import torch
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR
from tqdm.auto import tqdm

from .. import distributed
from ..errors import ModelError, StageError
from .auxk import auxk_loss
from .config import SAEConfig
from .encoder import topk_encode
from .metrics import fired_latents, fvu, nmse
from .model import TopKSAE
from .records import EvalRow, Hook, LogRow, StepInfo, TrainResult, TwoStageResult

log = logging.getLogger(__name__)


def lr_factor(step: int, steps: int, warmup_frac: float, decay_frac: float) -> float:
    """Multiplier of the peak LR at 0-based `step`: linear warm-up, constant, linear decay (never 0 on a step)."""
    factor = 1.0
    warmup, decay = math.ceil(warmup_frac * steps), math.ceil(decay_frac * steps)
    if warmup:
        factor = min(factor, (step + 1) / warmup)
    if decay:
        factor = min(factor, (steps - step) / decay)
    return factor


def _cycle(batches: Iterable[Tensor], stage: str) -> Iterator[Tensor]:
    """Batches forever: a re-iterable source is restarted (epochs); a one-shot iterator that runs out is an error."""
    served = 0
    while True:
        before = served
        for x in batches:
            served += 1
            yield x
        if served == before:
            raise StageError(f"SAE {stage}: the batch source yielded no batches")
        if iter(batches) is batches:
            raise StageError(
                f"SAE {stage}: the batch iterator ran out after {served} batches; pass a re-iterable "
                "source (a list, TensorBatches) to cycle epochs, or fewer steps"
            )


def _checked(x: Tensor, d_in: int, stage: str) -> Tensor:
    if x.ndim != 2 or x.shape[1] != d_in:
        raise StageError(f"SAE {stage}: expected batches of shape [B, {d_in}], got {tuple(x.shape)}")
    return x


def _run_hooks(
    hooks: Sequence[Hook], info: StepInfo, when: Literal["start", "step", "end"], evals: list[EvalRow]
) -> None:
    for hook in hooks:
        if hook.due(info.step, when) and (metrics := hook.fn(info)):
            evals.append(EvalRow(info.stage, info.step, dict(metrics)))
            log.info(
                "SAE %s step %d: %s",
                info.stage,
                info.step,
                ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()),
            )


def train_sae(
    batches: Iterable[Tensor],
    cfg: SAEConfig,
    *,
    steps: int,
    lr: float,
    sae: TopKSAE | None = None,
    hooks: Sequence[Hook] = (),
    stage: str = "sae",
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train for `steps` optimiser steps on `batches` ([B, d] tensors; a re-iterable source is cycled).

    With `sae=None` a fresh SAE is built from the width of the first batch, seeded by `cfg.seed`, and its b_pre
    is set to that batch's mean. A given `sae` is trained in place from its current weights, with a new
    optimiser and LR schedule (this is how stage 2 continues stage 1). `device` is where a fresh SAE is built;
    a given one stays where it is, and batches are moved to it."""
    cfg.check()
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    stream = _cycle(batches, stage)
    pending: list[Tensor] = []
    if sae is None:
        first = next(stream)
        if first.ndim != 2:
            raise StageError(f"SAE {stage}: expected batches of shape [B, d], got {tuple(first.shape)}")
        sae = TopKSAE.create(first.shape[1], cfg, device)
        with torch.no_grad():
            sae.b_pre.copy_(first.to(sae.device, torch.float32).mean(0))
            if distributed.active():  # every rank starts from rank 0's weights (its first batch's mean)
                for p in sae.coder.parameters():
                    torch.distributed.broadcast(p.data, src=0)
        pending.append(first)
    coder = sae.coder
    if coder.cfg.activation != "topk" or coder.cfg.transcode or coder.W_skip is not None:
        raise ModelError(f"SAE {stage}: only plain TopK autoencoders can be trained here, got {coder.cfg}")
    opt = torch.optim.Adam(coder.parameters(), lr=lr, betas=(0.9, 0.999))
    sched = LambdaLR(opt, lambda s: lr_factor(s, steps, cfg.warmup_frac, cfg.decay_frac))
    silent = torch.zeros(sae.num_latents, dtype=torch.long, device=sae.device)
    sums = torch.zeros(4, dtype=torch.float64, device=sae.device)
    result = TrainResult(sae, stage, 0, 0, 0.0, None)
    start, since_log = time.perf_counter(), 0
    use_auxk = cfg.auxk and cfg.auxk_alpha > 0
    log.info(
        "SAE %s: %d steps at lr %.3g (%d -> %d latents, k=%d)",
        stage,
        steps,
        lr,
        sae.d_in,
        sae.num_latents,
        sae.k,
    )

    def info(step: int) -> StepInfo:
        return StepInfo(stage, step, steps, result.vectors, sched.get_last_lr()[0], sae)

    _run_hooks(hooks, info(0), "start", result.evals)
    bar = tqdm(total=steps, desc=f"SAE {stage}", unit="step", disable=None, dynamic_ncols=True)
    for step in range(1, steps + 1):
        x = _checked(pending.pop() if pending else next(stream), sae.d_in, stage).to(sae.device, sae.dtype)
        lr_now = sched.get_last_lr()[0]
        acts, indices = topk_encode(x - coder.b_dec, coder.encoder.weight, coder.encoder.bias, coder.cfg.k)
        x_hat = coder.decode(acts, indices)
        main = nmse(x, x_hat)
        if use_auxk:
            aux = auxk_loss(coder, x, x_hat, silent > cfg.dead_after, x.pow(2).sum())
            loss = main + cfg.auxk_alpha * aux
        else:
            aux, loss = main.new_zeros(()), main
        loss.backward()
        distributed.all_reduce_mean_([p.grad for p in coder.parameters() if p.grad is not None])  # DDP
        coder.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        if step % cfg.renorm_every == 0:
            coder.set_decoder_norm_to_unit_norm()
        with torch.no_grad():
            fired = fired_latents(acts, indices, sae.num_latents)
            silent = torch.where(fired, 0, silent + x.shape[0])
            sums += torch.stack([loss.detach(), main.detach(), fvu(x, x_hat.detach()), aux.detach()])
        result.steps, result.vectors, since_log = step, result.vectors + x.shape[0], since_log + 1
        if step % cfg.log_every == 0 or step == steps:
            loss_, nmse_, fvu_, auxk_ = (sums / since_log).tolist()
            dead = float((silent > cfg.dead_after).double().mean())
            result.final = LogRow(step, result.vectors, lr_now, loss_, nmse_, fvu_, auxk_, dead)
            result.history.append(result.final)
            log.debug("SAE %s %s", stage, result.final)
            bar.set_postfix(loss=f"{loss_:.4f}", fvu=f"{fvu_:.3f}", dead=f"{dead:.3f}", refresh=False)
            sums.zero_()
            since_log = 0
        bar.update()
        if step < steps:
            _run_hooks(hooks, info(step), "step", result.evals)
    bar.close()
    if steps:
        coder.set_decoder_norm_to_unit_norm()
    result.seconds = time.perf_counter() - start
    _run_hooks(hooks, info(result.steps), "end", result.evals)
    if result.final is not None:
        log.info(
            "SAE %s done: %d steps, %d vectors, %.1f s, %s",
            stage,
            result.steps,
            result.vectors,
            result.seconds,
            ", ".join(
                f"{k}={v:.4g}" for k, v in result.final._asdict().items() if k not in ("step", "vectors")
            ),
        )
    return result


def train_two_stage(
    stage1: Iterable[Tensor],
    stage2: Iterable[Tensor],
    cfg: SAEConfig,
    *,
    stage1_steps: int | None = None,
    stage2_steps: int | None = None,
    hooks: Sequence[Hook] = (),
    device: str | torch.device = "cpu",
) -> TwoStageResult:
    """Stage 1 on general text (`stage1_lr`), then stage 2 continuing from stage 1's weights on the safety
    preference data (`stage2_lr`, new optimiser and schedule).

    Steps default to the config: `stage1_tokens / batch_size` for stage 1, and `stage2_epochs` x len(stage2)
    for stage 2 (which then must be sized: a list, TensorBatches, or any loader with `__len__` in batches)."""
    if stage1_steps is None:
        stage1_steps = cfg.stage1_steps()
    if stage2_steps is None:
        if not isinstance(stage2, Sized):
            raise ValueError("stage2 has no len(); pass stage2_steps explicitly")
        stage2_steps = cfg.stage2_steps(len(stage2))
    first = train_sae(
        stage1, cfg, steps=stage1_steps, lr=cfg.stage1_lr, hooks=hooks, stage="stage1", device=device
    )
    second = train_sae(
        stage2, cfg, steps=stage2_steps, lr=cfg.stage2_lr, sae=first.sae, hooks=hooks, stage="stage2"
    )
    return TwoStageResult(first.sae, first, second)
