"""SAE training speed on CPU, three implementations side by side on the same random standardised vectors:

- ours: `safer_rm.sae.train_sae` (sparsify's SparseCoder with the encoder backward of encoder.py, NMSE loss,
  AuxK on, LR schedule, logging, a timing hook);
- dense: a plain-torch TopK SAE of the same shape whose decoder is a dense matmul, z_dense @ W_dec;
- sparsify: eai-sparsify's own step, copied from `Trainer.fit` (its Trainer needs a Hugging Face model and
  token ids, so it cannot run on cached activations): unit-norm decoder, forward with the batch's total
  variance, FVU loss, backward, gradient projection, Adam (its `optimizer="adam"`; the default is "signum"),
  linear warm-up schedule, dead-latent counters. AuxK is off (its default auxk_alpha=0); ours has AuxK on,
  which costs nothing while no latent is dead, as here.

Rounds interleave the three so that load from other processes hits them alike; each round times steps 2..n
of a fresh call (ours) or of the persistent optimiser (the others), and the report gives the median rate.
`python -m bench.sae_bench` prints the result as JSON.
"""

from __future__ import annotations

import itertools
import json
import logging
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from transformers import get_linear_schedule_with_warmup

from safer_rm.sae import Hook, SAEConfig, TensorBatches, TopKSAE, nmse, train_sae
from safer_rm.sae.model import SparseCoder, SparseCoderConfig


class DenseTopKSAE(nn.Module):
    """The baseline: z = scatter(TopK(ReLU(W_enc (x - b_pre) + b_lat))) as a dense [B, latents] matrix."""

    def __init__(self, d_in: int, num_latents: int, k: int):
        super().__init__()
        self.k = k
        self.W_enc = nn.Parameter(torch.randn(num_latents, d_in) / d_in**0.5)
        self.b_lat = nn.Parameter(torch.zeros(num_latents))
        self.W_dec = nn.Parameter(self.W_enc.data.clone())
        self.b_pre = nn.Parameter(torch.zeros(d_in))
        self.renorm()

    @torch.no_grad()
    def renorm(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True)

    @torch.no_grad()
    def project_grad(self) -> None:
        grad = self.W_dec.grad
        grad -= (grad * self.W_dec).sum(1, keepdim=True) * self.W_dec

    def forward(self, x: Tensor) -> Tensor:
        pre = torch.relu((x - self.b_pre) @ self.W_enc.T + self.b_lat)
        acts, idx = pre.topk(self.k, dim=1, sorted=False)
        z = torch.zeros_like(pre).scatter(1, idx, acts)
        return z @ self.W_dec + self.b_pre


def _timed(step: Callable[[Tensor], None], pool: list[Tensor], n: int) -> float:
    """Steps per second over steps 2..n (step 1 warms caches and optimiser state), cycling over `pool`."""
    it = itertools.cycle(pool)
    step(next(it))
    start = time.perf_counter()
    for _ in range(n - 1):
        step(next(it))
    return (n - 1) / (time.perf_counter() - start)


def _dense_step(d_in: int, num_latents: int, k: int, lr: float) -> Callable[[Tensor], None]:
    torch.manual_seed(0)
    sae = DenseTopKSAE(d_in, num_latents, k)
    opt = torch.optim.Adam(sae.parameters(), lr=lr, betas=(0.9, 0.999))
    count = 0

    def step(x: Tensor) -> None:
        nonlocal count
        nmse(x, sae(x)).backward()
        sae.project_grad()
        opt.step()
        opt.zero_grad(set_to_none=True)
        count += 1
        if count % 10 == 0:
            sae.renorm()

    return step


def _sparsify_step(d_in: int, num_latents: int, k: int, total_steps: int) -> Callable[[Tensor], None]:
    torch.manual_seed(0)
    coder = SparseCoder(d_in, SparseCoderConfig(num_latents=num_latents, k=k), dtype=torch.float32)
    adam = torch.optim.Adam([dict(params=coder.parameters(), lr=2e-4 / (num_latents / 2**14) ** 0.5)])
    scheduler = get_linear_schedule_with_warmup(adam, 1000, total_steps)
    since_fired = torch.zeros(num_latents, dtype=torch.long)
    did_fire = torch.zeros(num_latents, dtype=torch.bool)
    first = True

    def step(x: Tensor) -> None:
        nonlocal first
        if first:
            coder.b_dec.data = x.mean(0)
            first = False
        coder.set_decoder_norm_to_unit_norm()
        total_variance = (x - x.mean(0)).pow(2).sum()
        out = coder(x=x, y=x, dead_mask=None, total_variance=total_variance)
        did_fire[out.latent_indices.flatten()] = True
        float(out.fvu.detach())
        (out.fvu + 0.0 * out.auxk_loss + out.multi_topk_fvu / 8).backward()
        coder.remove_gradient_parallel_to_decoder_directions()
        adam.step()
        adam.zero_grad()
        scheduler.step()
        with torch.no_grad():
            since_fired.add_(x.shape[0])
            since_fired[did_fire] = 0
            did_fire.zero_()

    return step


def run(
    batch_size: int = 4096,
    d_in: int = 576,
    num_latents: int = 4608,
    k: int = 32,
    steps: int = 5,
    rounds: int = 3,
) -> dict:
    """Training vectors per second of ours, the dense baseline and sparsify's step, and the ratios."""
    g = torch.Generator().manual_seed(0)
    data = torch.randn(4 * batch_size, d_in, generator=g)
    data = (data - data.mean(1, keepdim=True)) / (data.std(1, keepdim=True) + 1e-6)
    batches = TensorBatches(data, batch_size)
    pool = list(data.split(batch_size))
    cfg = SAEConfig(num_latents=num_latents, k=k, batch_size=batch_size, log_every=steps)
    sae = TopKSAE.create(d_in, cfg)

    def ours_rate() -> float:
        stamps: list[float] = []
        train_sae(
            batches,
            cfg,
            steps=steps,
            lr=cfg.stage1_lr,
            sae=sae,
            hooks=[Hook(lambda _: stamps.append(time.perf_counter()), every=1)],
        )
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    dense = _dense_step(d_in, num_latents, k, cfg.stage1_lr)
    theirs = _sparsify_step(d_in, num_latents, k, rounds * steps)
    rates: dict[str, list[float]] = {"ours": [], "dense": [], "sparsify": []}
    for _ in range(rounds):
        rates["ours"].append(ours_rate())
        rates["dense"].append(_timed(dense, pool, steps))
        rates["sparsify"].append(_timed(theirs, pool, steps))
    steps_per_s = {name: statistics.median(r) for name, r in rates.items()}
    return {
        "shape": {"batch_size": batch_size, "d_in": d_in, "num_latents": num_latents, "k": k},
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "timed_steps_per_round": steps - 1,
        "rounds": rounds,
        "steps_per_s": {name: round(v, 3) for name, v in steps_per_s.items()},
        "steps_per_s_range": {name: [round(min(r), 3), round(max(r), 3)] for name, r in rates.items()},
        "vectors_per_s": {name: round(v * batch_size) for name, v in steps_per_s.items()},
        "ratio_ours_over_dense": round(steps_per_s["ours"] / steps_per_s["dense"], 3),
        "ratio_ours_over_sparsify": round(steps_per_s["ours"] / steps_per_s["sparsify"], 3),
        "targets": {"ours_over_dense": 1.5, "ours_over_sparsify": 1.0},
    }


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(run(), indent=2))
