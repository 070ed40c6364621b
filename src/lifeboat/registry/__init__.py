"""Experiment tracking and the model registry (MLflow): versions, champion, gated promotion,
the history of every change of champion, and the training reference saved with each version."""

from lifeboat.registry.champion_history import ChampionHistory
from lifeboat.registry.evaluation import (
    CURVES_ARTIFACT,
    DRIFT_REFERENCE_ARTIFACT,
    SCORER_ARTIFACT,
    TRAINING_ROWS_ARTIFACT,
    baseline_roc_auc,
    classification_metrics,
    confusion,
    curves,
    score,
)
from lifeboat.registry.gate import EvaluationRows, Gate
from lifeboat.registry.model_registry import (
    CHALLENGER,
    CHAMPION,
    ModelRegistry,
    ModelVersion,
    NoEarlierChampion,
    PromotionDecision,
    view_mismatch,
)
from lifeboat.registry.reference import (
    CategoricalReference,
    DriftReference,
    NumericReference,
    bin_shares,
    category_counts,
    checked_probabilities,
    class_counts,
    drift_columns,
    numbers_in,
)
from lifeboat.registry.tracking import (
    TrackingServerUnavailable,
    configure_tracking,
    experiment_id,
    run_url,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "CURVES_ARTIFACT",
    "DRIFT_REFERENCE_ARTIFACT",
    "SCORER_ARTIFACT",
    "TRAINING_ROWS_ARTIFACT",
    "CategoricalReference",
    "ChampionHistory",
    "DriftReference",
    "EvaluationRows",
    "Gate",
    "ModelRegistry",
    "ModelVersion",
    "NoEarlierChampion",
    "NumericReference",
    "PromotionDecision",
    "TrackingServerUnavailable",
    "baseline_roc_auc",
    "bin_shares",
    "category_counts",
    "checked_probabilities",
    "class_counts",
    "classification_metrics",
    "configure_tracking",
    "confusion",
    "curves",
    "drift_columns",
    "experiment_id",
    "numbers_in",
    "run_url",
    "score",
    "view_mismatch",
]
