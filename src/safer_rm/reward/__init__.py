"""Reward models: Bradley-Terry training, batched scoring, RewardBench-style evaluation."""

from .config import EvalConfig, RMConfig
from .evaluate import SECTIONS, evaluate, section_scores, subset_accuracy
from .scoring import PairScores, score_encoded, score_pairs
from .train import BradleyTerryTrainer, PairCollator, bradley_terry_loss, train_reward_model

__all__ = [
    "SECTIONS", "BradleyTerryTrainer", "EvalConfig", "PairCollator", "PairScores", "RMConfig",
    "bradley_terry_loss", "evaluate", "score_encoded", "score_pairs", "section_scores", "subset_accuracy",
    "train_reward_model",
]
