from __future__ import annotations

import json
import math

import pytest
import torch
from sparsify import SparseCoder
from sparsify.fused_encoder import fused_encoder

from safer_rm.errors import ConfigError, ModelError, StageError
from safer_rm.sae import (
    Hook,
    MetricAccumulator,
    SAEConfig,
    SAEMeta,
    TensorBatches,
    TopKSAE,
    checkpoint_hook,
    eval_hook,
    evaluate_sae,
    fvu,
    l0,
    load_sae,
    lr_factor,
    nmse,
    save_sae,
    train_sae,
    train_two_stage,
)
from safer_rm.sae.auxk import auxk_loss
from safer_rm.sae.encoder import topk_encode
from safer_rm.sae.files import META_FILE


def dictionary_data(
    n: int, atoms: int, per: int, d: int = 16, seed: int = 0, standardise: bool = False
) -> torch.Tensor:
    """Vectors that are sums of `per` of `atoms` random unit directions with coefficients in [0.5, 1.5)."""
    g = torch.Generator().manual_seed(seed)
    atoms_ = torch.nn.functional.normalize(torch.randn(atoms, d, generator=g), dim=1)
    idx = torch.stack([torch.randperm(atoms, generator=g)[:per] for _ in range(n)])
    coef = torch.rand(n, per, generator=g) + 0.5
    x = torch.zeros(n, atoms).scatter_(1, idx, coef) @ atoms_
    if standardise:
        x = (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-6)
    return x


def small_cfg(**kw) -> SAEConfig:
    base = dict(num_latents=64, k=4, batch_size=256, dead_after=1024, log_every=10)
    return SAEConfig(**{**base, **kw})


def params(sae: TopKSAE) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in sae.coder.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def trained() -> TopKSAE:
    x = dictionary_data(2048, 32, 2, standardise=True)
    return train_sae(TensorBatches(x, 256), small_cfg(), steps=40, lr=3e-3).sae


# ---- training ------------------------------------------------------------------------------------------------


def test_training_learns_a_sparse_dictionary():
    x = dictionary_data(4096, 32, 2, standardise=True)
    heldout = dictionary_data(1024, 32, 2, standardise=True, seed=0)[:512]
    result = train_sae(TensorBatches(x, 256), small_cfg(), steps=300, lr=3e-3)
    m = evaluate_sae(result.sae, TensorBatches(heldout, 128, shuffle=False))
    assert m.fvu < 0.2 and m.nmse < 0.2
    assert result.final is not None and result.final.fvu < 0.2
    assert result.history[0].loss > result.final.loss
    assert m.l0 <= 4
    assert result.steps == 300 and result.vectors == 300 * 256
    norms = result.sae.W_dec.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_auxk_revives_latents_that_plain_topk_leaves_dead():
    """Shrinking 3/4 of the encoder rows at init keeps those latents out of every top k; under plain TopK such a
    latent gets no gradient and stays dead for good. AuxK trains them on the residual until they win again."""
    x = dictionary_data(4096, 64, 2, seed=10)
    dead = {}
    for auxk in (False, True):
        cfg = small_cfg(auxk=auxk)
        sae = TopKSAE.create(16, cfg)
        with torch.no_grad():
            sae.W_enc[:48] *= 0.1
            sae.b_pre.copy_(x.mean(0))
        train_sae(TensorBatches(x, 256), cfg, steps=200, lr=3e-3, sae=sae)
        dead[auxk] = evaluate_sae(sae, [x]).dead_fraction
    assert dead[False] >= 0.5
    assert dead[True] <= 0.25


def test_sparsify_auxk_misses_the_encoder_ours_reaches_it():
    """Why auxk.py exists: sparsify 1.3.3's fused encoder drops the gradient of pre_acts, so its AuxK loss
    never reaches a dead latent's encoder row. If this starts failing, sparsify has fixed it."""
    sae = TopKSAE.create(16, small_cfg())
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    dead = torch.zeros(64, dtype=torch.bool)
    dead[:32] = True
    out = sae.coder(x, dead_mask=dead)
    out.auxk_loss.backward()
    assert out.auxk_loss > 0 and sae.W_dec.grad[:32].abs().sum() > 0
    assert sae.W_enc.grad is None or sae.W_enc.grad[:32].abs().sum() == 0
    sae.coder.zero_grad(set_to_none=True)
    ours = auxk_loss(sae.coder, x, out.sae_out.detach(), dead, x.pow(2).sum())
    ours.backward()
    assert sae.W_enc.grad[:32].abs().sum() > 0
    assert sae.W_enc.grad[32:].abs().sum() == 0 and sae.b_pre.grad is None


def test_encoder_matches_sparsify_fused_encoder():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 16, generator=g, dtype=torch.float64)
    weight = torch.randn(64, 16, generator=g, dtype=torch.float64)
    bias = torch.randn(64, generator=g, dtype=torch.float64) - 12  # rows with fewer than k positive
    upstream = torch.randn(200, 4, generator=g, dtype=torch.float64)
    results = []
    for encode in (topk_encode, lambda *a: fused_encoder(*a, "topk")[:2]):
        leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
        acts, indices = encode(*leaves, 4)
        (acts * upstream).sum().backward()
        results.append((acts.detach(), indices, *(t.grad for t in leaves)))
    assert (results[0][0] == 0).any()
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs)


def test_stage2_continues_from_stage1(tmp_path):
    general = dictionary_data(1024, 32, 2, standardise=True, seed=1)
    safety = dictionary_data(512, 32, 2, standardise=True, seed=2)
    cfg = small_cfg(stage1_lr=3e-3, stage2_lr=1e-3, log_every=1)
    snaps: dict[str, dict] = {}

    def snapshot(info):
        snaps[f"{info.stage}@{info.step}"] = params(info.sae)

    hooks = [
        Hook(snapshot, at_start=True),
        eval_hook(TensorBatches(safety, 256, shuffle=False)),
        checkpoint_hook(tmp_path / "ckpt", "layers.3", every=5, meta=SAEMeta(layer=3)),
    ]
    out = train_two_stage(
        TensorBatches(general, 256),
        TensorBatches(safety, 256),
        cfg,
        stage1_steps=12,
        stage2_steps=6,
        hooks=hooks,
    )
    assert_same(snaps["stage1@12"], snaps["stage2@0"])
    assert out.stage2.sae is out.stage1.sae is out.sae
    assert out.stage1.steps == 12 and out.stage2.steps == 6
    assert max(r.lr for r in out.stage1.history) == pytest.approx(3e-3)
    assert max(r.lr for r in out.stage2.history) == pytest.approx(1e-3)
    assert [(e.stage, e.step) for e in out.stage2.evals] == [("stage2", 6)]
    assert set(out.stage2.evals[0].metrics) == {"vectors", "nmse", "fvu", "l0", "dead_fraction"}
    saved = load_sae(tmp_path / "ckpt" / "stage2", "layers.3", layer=3)
    assert saved.meta is not None and saved.meta.training["step"] == 6
    assert_same(params(saved.sae), params(out.sae))
    summary = out.summary()
    assert summary["stage1_steps"] == 12 and summary["stage2_steps"] == 6 and "stage2_fvu" in summary
    save_sae(out.sae, tmp_path / "final", "layers.3", SAEMeta(layer=3, training=summary))
    assert load_sae(tmp_path / "final", "layers.3").meta.training == summary

    # Zero stage-2 steps: the result is stage 1's SAE, bit for bit (same seed, same data order).
    alone = train_sae(TensorBatches(general, 256), cfg, steps=12, lr=cfg.stage1_lr)
    skipped = train_two_stage(
        TensorBatches(general, 256), TensorBatches(safety, 256), cfg, stage1_steps=12, stage2_steps=0
    )
    assert_same(params(alone.sae), params(skipped.sae))
    assert_same(params(alone.sae), snaps["stage1@12"])


def test_stage_steps_from_config():
    cfg = SAEConfig(batch_size=1000, stage1_tokens=10_500, stage2_epochs=1.5)
    assert cfg.stage1_steps() == 11 and cfg.stage2_steps(4) == 6
    data = dictionary_data(64, 8, 1)
    out = train_two_stage(
        [data[:32]],
        [data[32:], data[:32]],
        SAEConfig(num_latents=32, k=2, batch_size=32, stage1_tokens=64, stage2_epochs=1.5),
    )
    assert (out.stage1.steps, out.stage2.steps) == (2, 3)


def test_lr_schedule_warmup_constant_decay():
    f = [lr_factor(s, 100, 0.05, 0.20) for s in range(100)]
    assert f[0] == pytest.approx(0.2) and f[4] == 1 and f[50] == 1 and f[80] == 1
    assert f[90] == pytest.approx(0.5) and f[99] == pytest.approx(0.05)
    assert all(v > 0 for v in f)
    assert lr_factor(0, 1, 0.05, 0.2) == 1


def test_one_shot_iterator_that_runs_out_is_an_error():
    data = dictionary_data(64, 8, 1)
    with pytest.raises(StageError, match="ran out after 2 batches"):
        train_sae(iter([data[:32], data[32:]]), small_cfg(num_latents=32), steps=3, lr=1e-3)
    with pytest.raises(StageError, match=r"shape \[B, 16\]"):
        train_sae([data, data[:, :8]], small_cfg(num_latents=32), steps=2, lr=1e-3)


def test_config_check():
    SAEConfig().check()
    for bad, key in [
        (dict(k=0), "k"),
        (dict(num_latents=8, k=9), "k"),
        (dict(warmup_frac=0.9), "decay_frac"),
        (dict(decay_frac=1.0), "decay_frac"),
        (dict(stage2_lr=0), "stage2_lr"),
    ]:
        with pytest.raises(ConfigError) as err:
            SAEConfig(**bad).check()
        assert err.value.key == key
    assert SAEConfig(expansion=8).latents_for(576) == 4608


# ---- metrics -------------------------------------------------------------------------------------------------


def test_metrics_on_hand_computed_values():
    x = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    x_hat = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    # errors 16 and 1; ||x||^2 25 and 4; mean [1.5, 3] -> total variance 2.25 + 1 + 2.25 + 1 = 6.5
    assert nmse(x, x_hat).item() == pytest.approx((16 / 25 + 1 / 4) / 2)
    assert fvu(x, x_hat).item() == pytest.approx(17 / 6.5)
    acts = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
    indices = torch.tensor([[0, 3], [1, 2]])
    assert l0(acts).item() == 1.5
    acc = MetricAccumulator(2, 5)
    acc.add(x[:1], x_hat[:1], acts[:1], indices[:1])
    acc.add(x[1:], x_hat[1:], acts[1:], indices[1:])
    m = acc.result()
    assert (m.vectors, m.l0, m.dead_fraction) == (2, 1.5, 0.4)  # latent 3 selected with 0, latent 4 never
    assert m.nmse == pytest.approx(0.445) and m.fvu == pytest.approx(17 / 6.5)


def test_streamed_metrics_equal_whole_set(trained):
    x = dictionary_data(1000, 32, 2, standardise=True, seed=5)
    streamed = evaluate_sae(trained, TensorBatches(x, 64, shuffle=False, drop_last=False))
    with torch.no_grad():
        acts, indices = trained.encode(x)
        x_hat = trained.decode(acts, indices)
    assert streamed.vectors == 1000
    assert streamed.fvu == pytest.approx(fvu(x.double(), x_hat.double()).item(), rel=1e-6)
    assert streamed.nmse == pytest.approx(nmse(x.double(), x_hat.double()).item(), rel=1e-6)
    assert streamed.l0 == pytest.approx(l0(acts).item())
    dense = trained.dense(x)
    assert torch.equal(dense.gather(1, indices), acts)
    assert streamed.dead_fraction == pytest.approx((dense != 0).sum(0).eq(0).float().mean().item())


# ---- files ---------------------------------------------------------------------------------------------------


def test_save_load_round_trip_is_exact(tmp_path, trained):
    meta = SAEMeta(layer=4, position_policy="sentence_end", training={"steps": 40})
    folder = save_sae(trained, tmp_path, "layers.4", meta)
    assert {p.name for p in folder.iterdir()} == {"cfg.json", META_FILE, "sae.safetensors"}
    assert [p.name for p in tmp_path.iterdir()] == ["layers.4"]  # no temporary folders left
    loaded = load_sae(tmp_path, "layers.4", d_in=16, layer=4)
    assert loaded.meta == meta and loaded.path == folder
    assert_same(params(loaded.sae), params(trained))
    x = dictionary_data(100, 32, 2, standardise=True, seed=9)
    with torch.no_grad():
        for a, b in zip(loaded.sae.encode(x), trained.encode(x)):
            assert torch.equal(a, b)
    theirs = SparseCoder.load_from_disk(folder)
    assert_same({k: v for k, v in theirs.state_dict().items()}, params(trained))
    assert theirs.cfg.k == trained.k and theirs.num_latents == trained.num_latents

    for bad in (".", "..", "../x", str(tmp_path / "abs")):
        with pytest.raises(ValueError, match="relative folder name"):
            save_sae(trained, tmp_path, bad)
    save_sae(TopKSAE.create(16, small_cfg(seed=1)), tmp_path, "layers.4", meta)  # replaces the folder
    assert not torch.equal(load_sae(tmp_path, "layers.4").sae.W_enc, trained.W_enc)


def test_loads_a_folder_saved_by_sparsify(tmp_path, trained):
    trained.coder.save_to_disk(tmp_path / "layers.2")
    loaded = load_sae(tmp_path, "layers.2", d_in=16, layer=2)
    assert loaded.meta is None
    assert_same(params(loaded.sae), params(trained))


def test_loader_errors_name_the_path(tmp_path, trained):
    folder = save_sae(trained, tmp_path, "layers.4", SAEMeta(layer=4))
    with pytest.raises(ModelError, match=rf"{folder}: SAE of width 16 but layer has 32"):
        load_sae(tmp_path, "layers.4", d_in=32)
    with pytest.raises(ModelError, match=rf"{folder}: SAE trained on layer 4 but layer 5"):
        load_sae(tmp_path, "layers.4", layer=5)
    with pytest.raises(ModelError, match=rf"{tmp_path / 'layers.9'}: no SAE folder"):
        load_sae(tmp_path, "layers.9")
    (folder / "sae.safetensors").unlink()
    with pytest.raises(ModelError, match=rf"{folder / 'sae.safetensors'}: missing"):
        load_sae(tmp_path, "layers.4")
    (folder / "sae.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match=rf"{folder / 'sae.safetensors'}: cannot load"):
        load_sae(tmp_path, "layers.4")
    cfg = json.loads((folder / "cfg.json").read_text())
    (folder / "cfg.json").write_text(json.dumps({**cfg, "d_in": "wide"}))
    with pytest.raises(ModelError, match="field 'd_in'"):
        load_sae(tmp_path, "layers.4")
    (folder / "cfg.json").write_text("{")
    with pytest.raises(ModelError, match=rf"{folder / 'cfg.json'}: unreadable JSON"):
        load_sae(tmp_path, "layers.4")


def test_model_shapes(trained):
    assert (trained.d_in, trained.num_latents, trained.k) == (16, 64, 4)
    x = torch.randn(5, 16)
    with torch.no_grad():
        acts, indices = trained.encode(x)
        assert acts.shape == indices.shape == (5, 4) and (acts >= 0).all()
        assert trained(x).shape == (5, 16)
        assert math.isclose(float(trained.dense(x).sum()), float(acts.sum()), rel_tol=1e-6)
