"""Experiment tracking and the model registry (MLflow): versions, champion, gated promotion,
and the history of every change of champion."""

from lifeboat.registry.history import ChampionHistory
from lifeboat.registry.metrics import score
from lifeboat.registry.models import (
    CHALLENGER,
    CHAMPION,
    ModelRegistry,
    ModelVersion,
    NoEarlierChampion,
    PromotionDecision,
    view_mismatch,
)
from lifeboat.registry.tracking import configure_tracking, experiment_id

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ChampionHistory",
    "ModelRegistry",
    "ModelVersion",
    "NoEarlierChampion",
    "PromotionDecision",
    "configure_tracking",
    "experiment_id",
    "score",
    "view_mismatch",
]
