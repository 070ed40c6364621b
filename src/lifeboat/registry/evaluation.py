"""Held-out metrics, computed one way for training reports, promotion decisions and
benchmarks alike, each at the model's own decision threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

CURVES_ARTIFACT = "heldout_curves.json"
FEATURE_IMPORTANCE_ARTIFACT = "feature_importance.json"
DRIFT_REFERENCE_ARTIFACT = "drift_reference.json"
TRAINING_ROWS_ARTIFACT = "training_rows.json"  # the keys of the rows a model was trained on
PROMOTION_ROWS_ARTIFACT = "promotion_rows.json"  # the keys of the rows its promotion was judged on
# The compiled scorer, when the model has one. The folder keeps the name it had when the
# scorer was called the fast path: every version registered since is saved under it.
SCORER_ARTIFACT = "fast_path"
GATE_METRICS = ("roc_auc", "accuracy", "f1")
_CALIBRATION_BINS = 10
_CURVE_POINTS = 200  # a curve is thinned to about this many points for the UI
_IMPORTANCE_REPEATS = 5  # shuffles per feature: their spread says how sure each drop is
_IMPORTANCE_ROWS = 5_000  # at most, drawn from the held-out rows: the cost grows with both


def model_threshold(model: Any) -> float:
    """The model's decision threshold; 0.5 for a model without one."""
    return float(getattr(model, "threshold_", 0.5))


def positive_probability(model: Any, features: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(features)[:, 1]


def score(model: Any, features: pd.DataFrame, labels: pd.Series) -> dict[str, float]:
    return classification_metrics(labels, positive_probability(model, features),
                                  model_threshold(model))


def classification_metrics(labels: Any, probability: np.ndarray, threshold: float
                           ) -> dict[str, float]:
    predicted = (probability >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "roc_auc": float(roc_auc_score(labels, probability)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "brier": float(brier_score_loss(labels, probability)),
        "ece": expected_calibration_error(np.asarray(labels), probability),
        "threshold": float(threshold),
        "true_negatives": float(tn),
        "false_positives": float(fp),
        "false_negatives": float(fn),
        "true_positives": float(tp),
    }


def metric(name: str, labels: np.ndarray, probability: np.ndarray, threshold: float,
           weights: np.ndarray | None = None) -> float:
    """One metric a promotion is decided on (`GATE_METRICS`), rows weighted."""
    if name == "roc_auc":
        return float(roc_auc_score(labels, probability, sample_weight=weights))
    predicted = (probability >= threshold).astype(int)
    if name == "accuracy":
        return float(accuracy_score(labels, predicted, sample_weight=weights))
    if name == "f1":
        return float(f1_score(labels, predicted, sample_weight=weights, zero_division=0))
    raise ValueError(f"unknown metric {name!r}: one of {', '.join(GATE_METRICS)}")


def expected_calibration_error(labels: np.ndarray, probability: np.ndarray,
                               bins: int = _CALIBRATION_BINS) -> float:
    """The rows' average gap between predicted probability and observed frequency, over
    equal-width probability bins, each bin weighed by its share of rows."""
    which = np.clip((probability * bins).astype(int), 0, bins - 1)
    error = 0.0
    for chosen in range(bins):
        rows = which == chosen
        if rows.any():
            error += rows.mean() * abs(probability[rows].mean() - labels[rows].mean())
    return float(error)


def baseline_roc_auc(values: pd.Series, labels: pd.Series) -> float:
    """ROC AUC of ranking rows by one input alone (a missing value ranks lowest)."""
    return float(roc_auc_score(labels, values.rank(na_option="top")))


def curves(labels: Any, probability: np.ndarray, threshold: float) -> dict[str, Any]:
    """What a reviewer looks at before trusting a model: the held-out ROC curve, the
    reliability diagram, the precision-recall curve, and where the threshold sits on it
    with the confusion matrix it gives."""
    fpr, tpr, _ = roc_curve(labels, probability)
    observed, predicted = calibration_curve(labels, probability, n_bins=_CALIBRATION_BINS,
                                            strategy="quantile")
    precision, recall, _ = precision_recall_curve(labels, probability)
    at = classification_metrics(labels, probability, threshold)
    return {"roc": {"fpr": _thinned(fpr), "tpr": _thinned(tpr)},
            "calibration": {"predicted": np.round(predicted, 4).tolist(),
                            "observed": np.round(observed, 4).tolist()},
            "precision_recall": {"precision": _thinned(precision), "recall": _thinned(recall)},
            "threshold": {"value": float(threshold), "precision": at["precision"],
                          "recall": at["recall"], "confusion": confusion(at)}}


def feature_importance(model: Any, features: pd.DataFrame, labels: pd.Series,
                       seed: int) -> dict[str, Any]:
    """How much the held-out ROC AUC drops when one input's values are shuffled among the
    rows: permutation importance, model-agnostic, so every candidate (linear or boosted,
    behind its feature pipeline) is judged the same way, on rows it never saw. Features
    most important first; a drop near zero or below it means the model does not need it."""
    if len(labels) > _IMPORTANCE_ROWS:
        chosen = np.random.default_rng(seed).choice(len(labels), _IMPORTANCE_ROWS, replace=False)
        features, labels = features.iloc[chosen], labels.iloc[chosen]
    found = permutation_importance(model, features, labels, scoring="roc_auc",
                                   n_repeats=_IMPORTANCE_REPEATS, random_state=seed)
    ranked = sorted(zip(features.columns, found.importances_mean, found.importances_std),
                    key=lambda item: -item[1])
    return {"method": "permutation", "metric": "roc_auc", "rows": len(labels),
            "repeats": _IMPORTANCE_REPEATS,
            "features": [{"name": str(name), "importance": round(float(mean), 5),
                          "spread": round(float(spread), 5)} for name, mean, spread in ranked]}


def _thinned(values: np.ndarray) -> list[float]:
    step = max(len(values) // _CURVE_POINTS, 1)
    kept = np.r_[values[::step], values[-1:]] if len(values) else values
    return np.round(kept, 4).tolist()


def confusion(metrics: dict[str, float]) -> list[list[int]]:
    return np.array([[metrics["true_negatives"], metrics["false_positives"]],
                     [metrics["false_negatives"], metrics["true_positives"]]], dtype=int).tolist()
