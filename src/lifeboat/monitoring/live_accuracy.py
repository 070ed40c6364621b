"""Live accuracy: served predictions whose true outcome came back through /feedback."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select

from lifeboat.db import Database, Feedback, Prediction
from lifeboat.registry import ModelVersion


@dataclass(frozen=True)
class LiveAccuracy:
    accuracy: float | None  # None until a labelled prediction exists
    samples: int
    heldout_accuracy: float | None

    @property
    def drop(self) -> float | None:
        """How far below its held-out accuracy the model now scores (negative: above)."""
        if self.accuracy is None or self.heldout_accuracy is None:
            return None
        return self.heldout_accuracy - self.accuracy


def live_accuracy(database: Database, dataset: str, model_version: str,
                  heldout_accuracy: float | None, window: int) -> LiveAccuracy:
    """Accuracy over the `window` most recent labelled predictions of this model version:
    another version's hits and misses say nothing about the one serving now."""
    recent = (select(case((Prediction.prediction == Feedback.actual, 1), else_=0).label("hit"))
              .join(Feedback, Feedback.prediction_id == Prediction.id)
              .where(Prediction.dataset == dataset, Prediction.model_version == model_version)
              .order_by(Prediction.created_at.desc()).limit(window).subquery())
    with database.session() as session:
        hits, samples = session.execute(select(func.sum(recent.c.hit), func.count())).one()
    accuracy = hits / samples if samples else None
    return LiveAccuracy(accuracy, samples, heldout_accuracy)


def version_live_accuracy(database: Database, dataset: str, version: ModelVersion,
                          window: int) -> LiveAccuracy:
    """A registered version's live accuracy beside its own held-out accuracy."""
    return live_accuracy(database, dataset, version.version, version.metrics.get("test_accuracy"),
                         window)
