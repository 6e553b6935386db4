"""Reward models: Bradley-Terry training, batched scoring, RewardBench-style evaluation."""

from .config import EvalConfig, RMConfig
from .evaluate import SECTIONS, EvalSet, evaluate_sets, section_scores, subset_accuracy
from .scoring import PairRewards, reward_pairs, score_encoded
from .train import BradleyTerryTrainer, PairCollator, bradley_terry_loss, train_reward_model

__all__ = [
    "SECTIONS",
    "BradleyTerryTrainer",
    "EvalConfig",
    "PairCollator",
    "PairRewards",
    "RMConfig",
    "bradley_terry_loss",
    "EvalSet",
    "evaluate_sets",
    "reward_pairs",
    "score_encoded",
    "section_scores",
    "subset_accuracy",
    "train_reward_model",
]
