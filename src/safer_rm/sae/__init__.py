"""TopK sparse autoencoders on reward-model hidden states (docs/method.md §2): the model (on sparsify's
`SparseCoder`), a two-stage trainer over cached activation batches, streaming metrics, files in sparsify's
layout, and an activation cache encoded batch by batch (`encoded_batches`, for the passes of features/ and
curation/).

    from safer_rm.sae import SAEConfig, TensorBatches, train_two_stage, evaluate_sae, save_sae, load_sae, SAEMeta

    cfg = SAEConfig(k=64, expansion=8)
    result = train_two_stage(general_batches, safety_batches, cfg, hooks=[eval_hook(heldout_batches, every=500)])
    metrics = evaluate_sae(result.sae, heldout_batches)
    meta = SAEMeta(layer=12, position_policy="sentence_end", training=result.summary())
    save_sae(result.sae, run_dir / "sae", hookpoint_for(12), meta)
    sae = load_sae(run_dir / "sae", hookpoint_for(12), d_in=2048, layer=12).sae
"""

from ..lazy import lazy_exports
from .config import SAEConfig

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "TensorBatches": "batches",
        "EncodedBatch": "encoded",
        "LatentColumns": "encoded",
        "encoded_batches": "encoded",
        "LoadedSAE": "files",
        "SAEMeta": "files",
        "hookpoint_for": "files",
        "load_sae": "files",
        "save_sae": "files",
        "checkpoint_hook": "hooks",
        "eval_hook": "hooks",
        "MetricAccumulator": "metrics",
        "SAEMetrics": "metrics",
        "evaluate_sae": "metrics",
        "fvu": "metrics",
        "l0": "metrics",
        "nmse": "metrics",
        "Encoding": "model",
        "TopKSAE": "model",
        "EvalRow": "records",
        "Hook": "records",
        "LogRow": "records",
        "StepInfo": "records",
        "TrainResult": "records",
        "TwoStageResult": "records",
        "lr_factor": "train",
        "train_sae": "train",
        "train_two_stage": "train",
    },
)

__all__ = [
    "EncodedBatch",
    "Encoding",
    "EvalRow",
    "Hook",
    "LatentColumns",
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
    "encoded_batches",
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
