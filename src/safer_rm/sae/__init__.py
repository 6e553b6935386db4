"""TopK sparse autoencoders on reward-model hidden states (docs/method.md §2): the model (on sparsify's
`SparseCoder`), a two-stage trainer over cached activation batches, streaming metrics, and files in
sparsify's layout.

    from safer_rm.sae import SAEConfig, TensorBatches, train_two_stage, evaluate_sae, save_sae, load_sae, SAEMeta

    cfg = SAEConfig(k=64, expansion=8)
    result = train_two_stage(general_batches, safety_batches, cfg, hooks=[eval_hook(heldout_batches, every=500)])
    metrics = evaluate_sae(result.sae, heldout_batches)
    meta = SAEMeta(layer=12, position_policy="sentence_end", training=result.summary())
    save_sae(result.sae, run_dir / "sae", hookpoint_for(12), meta)
    sae = load_sae(run_dir / "sae", hookpoint_for(12), d_in=2048, layer=12).sae
"""

from .batches import TensorBatches
from .config import SAEConfig
from .files import LoadedSAE, SAEMeta, hookpoint_for, load_sae, save_sae
from .hooks import checkpoint_hook, eval_hook
from .metrics import MetricAccumulator, SAEMetrics, evaluate_sae, fvu, l0, nmse
from .model import Encoding, TopKSAE
from .records import EvalRow, Hook, LogRow, StepInfo, TrainResult, TwoStageResult
from .train import (
    lr_factor,
    train_sae,
    train_two_stage,
)

__all__ = [
    "Encoding",
    "EvalRow",
    "Hook",
    "LoadedSAE",
    "LogRow",
    "MetricAccumulator",
    "SAEConfig",
    "SAEMeta",
    "SAEMetrics",
    "StepInfo",
    "TensorBatches",
    "TopKSAE",
    "TrainResult",
    "TwoStageResult",
    "checkpoint_hook",
    "eval_hook",
    "evaluate_sae",
    "fvu",
    "hookpoint_for",
    "l0",
    "load_sae",
    "lr_factor",
    "nmse",
    "save_sae",
    "train_sae",
    "train_two_stage",
]
