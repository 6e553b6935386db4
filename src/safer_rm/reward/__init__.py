"""Reward models: Bradley-Terry training, batched scoring, RewardBench-style evaluation."""

from ..lazy import lazy_exports
from .config import EvalConfig, RMConfig

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SECTIONS": "evaluate",
        "EvalSet": "evaluate",
        "evaluate_sets": "evaluate",
        "section_scores": "evaluate",
        "subset_accuracy": "evaluate",
        "PairRewards": "scoring",
        "Scorer": "scoring",
        "reward_pairs": "scoring",
        "score_encoded": "scoring",
        "BradleyTerryTrainer": "train",
        "PairCollator": "train",
        "bradley_terry_loss": "train",
        "train_reward_model": "train",
    },
)

__all__ = [
    "SECTIONS",
    "BradleyTerryTrainer",
    "EvalConfig",
    "PairCollator",
    "PairRewards",
    "RMConfig",
    "Scorer",
    "bradley_terry_loss",
    "EvalSet",
    "evaluate_sets",
    "reward_pairs",
    "score_encoded",
    "section_scores",
    "subset_accuracy",
    "train_reward_model",
]
