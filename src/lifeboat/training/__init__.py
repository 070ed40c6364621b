"""Training: hyperparameter search with cross-validation, balanced inside folds, tracked in MLflow."""

from lifeboat.training.candidates import CANDIDATES, candidates, model_pipeline
from lifeboat.training.data import labelled_features
from lifeboat.training.train import (
    Selection,
    TrainingResult,
    log_and_register,
    search_and_select,
    train,
)

__all__ = [
    "CANDIDATES",
    "Selection",
    "TrainingResult",
    "candidates",
    "labelled_features",
    "log_and_register",
    "model_pipeline",
    "search_and_select",
    "train",
]
