"""Experiment tracking and the model registry (MLflow): versions, champion, gated promotion,
the history of every change of champion, and the training reference saved with each version."""

from lifeboat import lazy_exports
from lifeboat.registry.tracking import (
    TrackingServerUnavailable,
    configure_tracking,
    experiment_id,
    run_url,
)
from lifeboat.registry.versions import (
    CHALLENGER,
    CHAMPION,
    HYPERPARAMETER_PREFIX,
    MODEL_TYPE_PARAM,
    ModelVersion,
    list_versions,
)

# Evaluation and the gate (pandas, scikit-learn), the registry itself (MLflow) and the history
# (SQLAlchemy) are imported when first used: listing versions needs none of them.
__getattr__ = lazy_exports(__name__, {
    "champion_history": ("ChampionHistory",),
    "evaluation": ("CURVES_ARTIFACT", "DRIFT_REFERENCE_ARTIFACT", "FEATURE_IMPORTANCE_ARTIFACT",
                   "SCORER_ARTIFACT", "TRAINING_ROWS_ARTIFACT", "baseline_roc_auc",
                   "classification_metrics", "confusion", "curves", "feature_importance",
                   "score"),
    "gate": ("EvaluationRows", "Gate"),
    "model_registry": ("ModelRegistry", "NoEarlierChampion", "PromotionDecision",
                       "view_mismatch"),
    "reference": ("CategoricalReference", "DriftReference", "NumericReference", "bin_shares",
                  "category_counts", "checked_probabilities", "class_counts", "drift_columns",
                  "numbers_in"),
})

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "CURVES_ARTIFACT",
    "DRIFT_REFERENCE_ARTIFACT",
    "FEATURE_IMPORTANCE_ARTIFACT",
    "HYPERPARAMETER_PREFIX",
    "MODEL_TYPE_PARAM",
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
    "feature_importance",
    "list_versions",
    "numbers_in",
    "run_url",
    "score",
    "view_mismatch",
]
