"""Trainers: a documented ``XConfig`` plus an ``XTrainer`` per method, on one shared loop."""

from dopsd.trainers.base import Trainer
from dopsd.trainers.config import DOPSDConfig, TrainingConfig
from dopsd.trainers.dopsd import DOPSDTrainer
from dopsd.trainers.grpo import GRPOConfig, GRPOTrainer
from dopsd.trainers.sft import SFTConfig, SFTTrainer

__all__ = [
    "DOPSDConfig", "DOPSDTrainer", "GRPOConfig", "GRPOTrainer", "SFTConfig", "SFTTrainer", "Trainer", "TrainingConfig",
]
