"""How well the serving model does on live traffic: measured on predictions whose true
outcome came back (sent to /feedback, or derived from later events), and estimated where
none has yet, from its calibrated probabilities (CBPE)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sqlalchemy import select

from lifeboat.db import Database, Feedback, Prediction
from lifeboat.registry import ModelVersion


@dataclass(frozen=True)
class LiveAccuracy:
    model_version: str
    accuracy: float | None  # None until a labelled prediction exists
    samples: int
    heldout_accuracy: float | None
    roc_auc: float | None = None  # None unless both classes are among the outcomes

    @property
    def drop(self) -> float | None:
        """How far below its held-out accuracy the model now scores (negative: above)."""
        if self.accuracy is None or self.heldout_accuracy is None:
            return None
        return self.heldout_accuracy - self.accuracy


def live_accuracy(database: Database, dataset: str, model_version: str,
                  heldout_accuracy: float | None, window: int) -> LiveAccuracy:
    """Accuracy (at the threshold each prediction was served with) and ROC AUC (of the
    logged probabilities) over the `window` most recent labelled predictions of this model
    version: another version's hits and misses say nothing about the one serving now."""
    query = (select(Prediction.prediction, Prediction.probability, Feedback.actual)
             .join(Feedback, Feedback.prediction_id == Prediction.id)
             .where(Prediction.dataset == dataset, Prediction.model_version == model_version)
             .order_by(Prediction.created_at.desc()).limit(window))
    with database.session() as session:
        rows = session.execute(query).all()
    if not rows:
        return LiveAccuracy(model_version, None, 0, heldout_accuracy)
    predicted, probability, actual = (np.asarray(column) for column in zip(*rows, strict=True))
    return LiveAccuracy(model_version, float((predicted == actual).mean()), len(rows),
                        heldout_accuracy, roc_auc(actual, probability.astype(np.float64)))


def version_live_accuracy(database: Database, dataset: str, version: ModelVersion,
                          window: int) -> LiveAccuracy:
    """A registered version's live accuracy beside its own held-out accuracy."""
    return live_accuracy(database, dataset, version.version, version.metrics.get("test_accuracy"),
                         window)


def roc_auc(actual: np.ndarray, probability: np.ndarray) -> float | None:
    """The chance that a positive outcome got a higher probability than a negative one (ties
    count half): the Mann-Whitney U over both classes' counts. None with one class only."""
    positive = actual == 1
    positives, negatives = int(positive.sum()), int((~positive).sum())
    if not positives or not negatives:
        return None
    ranks = stats.rankdata(probability)
    return float((ranks[positive].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))


def estimated_accuracy(probabilities: np.ndarray, threshold: float) -> float:
    """The accuracy a window should have if its probabilities are calibrated (CBPE, as
    NannyML estimates performance before labels come): a prediction served as 1 (p at or
    above the threshold) is right with chance p, one served as 0 with chance 1 - p."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return float(np.where(probabilities >= threshold, probabilities, 1 - probabilities).mean())
