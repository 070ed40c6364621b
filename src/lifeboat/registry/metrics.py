"""Held-out metrics, computed one way for training reports and promotion decisions alike."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)


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


def confusion(metrics: dict[str, float]) -> list[list[int]]:
    return np.array([[metrics["true_negatives"], metrics["false_positives"]],
                     [metrics["false_negatives"], metrics["true_positives"]]], dtype=int).tolist()
