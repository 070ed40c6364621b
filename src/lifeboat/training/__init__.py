"""Training: hyperparameter search with cross-validation, balanced inside folds, tracked in MLflow."""

from lifeboat.training.candidates import candidates, model_pipeline
from lifeboat.training.data import labelled_rows
from lifeboat.training.train import TrainingResult, train

__all__ = ["TrainingResult", "candidates", "labelled_rows", "model_pipeline", "train"]
