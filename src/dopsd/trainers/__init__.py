"""Trainers: a documented ``XConfig`` plus an ``XTrainer`` per method, on one shared loop. Each method is registered
in :mod:`dopsd.methods`; its classes are importable from here by name (``from dopsd.trainers import GRPOTrainer``)."""

from dopsd.methods import METHODS
from dopsd.trainers.base import Trainer
from dopsd.trainers.config import RolloutConfig, RunConfig, TrainingConfig
from dopsd.trainers.run import TrainingRun


def _registered() -> dict:
    classes = {}
    for method in METHODS.values():
        trainer = method.trainer_class()
        classes[trainer.__name__] = trainer
        classes[trainer.config_class.__name__] = trainer.config_class
    return classes


def __getattr__(name: str):
    classes = _registered()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module 'dopsd.trainers' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_registered()))


# and every registered method's XConfig and XTrainer
__all__ = ["RolloutConfig", "RunConfig", "Trainer", "TrainingConfig", "TrainingRun"]
