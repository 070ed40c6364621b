"""Experiment tracking and the model registry (MLflow): versions, champion, gated promotion."""

from lifeboat.registry.metrics import score
from lifeboat.registry.models import CHALLENGER, CHAMPION, ModelRegistry, ModelVersion, PromotionDecision
from lifeboat.registry.tracking import configure_tracking, experiment_id

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ModelRegistry",
    "ModelVersion",
    "PromotionDecision",
    "configure_tracking",
    "experiment_id",
    "score",
]
