"""Training: hyperparameter search with cross-validation, balanced inside folds, calibrated
out of fold, tracked in MLflow."""

from lifeboat.training.calibration import CalibratedModel
from lifeboat.training.candidates import CANDIDATES, candidates, model_pipeline
from lifeboat.training.data import DataSeen, labelled_features, new_labels_since
from lifeboat.training.train import (
    Selection,
    TrainingResult,
    fit_model,
    log_and_register,
    search_and_select,
    train,
)

__all__ = [
    "CANDIDATES",
    "CalibratedModel",
    "DataSeen",
    "Selection",
    "TrainingResult",
    "candidates",
    "fit_model",
    "labelled_features",
    "log_and_register",
    "model_pipeline",
    "new_labels_since",
    "search_and_select",
    "train",
]
