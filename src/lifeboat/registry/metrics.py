"""Held-out metrics, computed one way for training reports and promotion decisions alike."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

CURVES_ARTIFACT = "heldout_curves.json"
DRIFT_REFERENCE_ARTIFACT = "drift_reference.json"
SCORER_ARTIFACT = "fast_path"  # the serving fast path's compiled scorer, when it has one
_CALIBRATION_BINS = 10


def score(model: Any, features: pd.DataFrame, labels: pd.Series) -> dict[str, float]:
    probability = model.predict_proba(features)[:, 1]
    predicted = (probability >= 0.5).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "roc_auc": float(roc_auc_score(labels, probability)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "brier": float(brier_score_loss(labels, probability)),
        "true_negatives": float(tn),
        "false_positives": float(fp),
        "false_negatives": float(fn),
        "true_positives": float(tp),
    }


def baseline_roc_auc(values: pd.Series, labels: pd.Series) -> float:
    """ROC AUC of ranking rows by one input alone (a missing value ranks lowest)."""
    return float(roc_auc_score(labels, values.rank(na_option="top")))


def curves(model: Any, features: pd.DataFrame, labels: pd.Series) -> dict[str, Any]:
    """The held-out ROC curve and reliability diagram: what a reviewer looks at before
    trusting a model's ranking and its probabilities."""
    probability = model.predict_proba(features)[:, 1]
    fpr, tpr, _ = roc_curve(labels, probability)
    observed, predicted = calibration_curve(labels, probability, n_bins=_CALIBRATION_BINS,
                                            strategy="quantile")
    return {"roc": {"fpr": np.round(fpr, 4).tolist(), "tpr": np.round(tpr, 4).tolist()},
            "calibration": {"predicted": np.round(predicted, 4).tolist(),
                            "observed": np.round(observed, 4).tolist()}}


def confusion(metrics: dict[str, float]) -> list[list[int]]:
    return np.array([[metrics["true_negatives"], metrics["false_positives"]],
                     [metrics["false_negatives"], metrics["true_positives"]]], dtype=int).tolist()
