"""Training: hyperparameter search with cross-validation, balanced inside folds, tracked in MLflow."""

from lifeboat.training.candidates import candidates, model_pipeline
from lifeboat.training.data import labelled_rows
from lifeboat.training.train import (
    Selection,
    TrainingResult,
    log_and_register,
    search_and_select,
    train,
)

__all__ = [
    "Selection",
    "TrainingResult",
    "candidates",
    "labelled_rows",
    "log_and_register",
    "model_pipeline",
    "search_and_select",
    "train",
]
