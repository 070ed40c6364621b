"""The prediction log: every prediction is written to the database and can be read back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select

from lifeboat.db import Database, Feedback, Prediction, as_utc, utcnow


def save_feedback(database: Database, dataset: str, prediction_id: str,
                  actual: int) -> int | None:
    """Stores the true outcome (a later answer replaces an earlier one, a derived one
    included); returns what was predicted, or None when no logged prediction of this
    dataset has this id."""
    with database.session() as session:
        predicted = session.scalar(select(Prediction.prediction).where(
            Prediction.id == prediction_id, Prediction.dataset == dataset))
        if predicted is not None:
            session.merge(Feedback(prediction_id=prediction_id, actual=actual, received_at=utcnow(),
                                   source="api"))
    return predicted


def past_predictions(database: Database, *, dataset: str, source: str | None = None,
                     since: datetime | None = None, until: datetime | None = None,
                     limit: int = 100, offset: int = 0) -> tuple[int, list[Prediction]]:
    """Newest first, ties broken by id, so paging with offset never repeats or skips a row."""
    query = _filtered(select(Prediction), dataset, source, since, until)
    counted = _filtered(select(func.count()).select_from(Prediction), dataset, source, since, until)
    with database.session() as session:
        total = session.scalar(counted) or 0
        rows = session.scalars(
            query.order_by(Prediction.created_at.desc(), Prediction.id.desc())
            .limit(limit).offset(offset)
        ).all()
    for row in rows:
        row.created_at = as_utc(row.created_at)
    return total, list(rows)


def _filtered(query: Select, dataset: str, source: str | None, since: datetime | None,
              until: datetime | None) -> Select:
    query = query.where(Prediction.dataset == dataset)
    if source is not None:
        query = query.where(Prediction.source == source)
    if since is not None:
        query = query.where(Prediction.created_at >= as_utc(since))
    if until is not None:
        query = query.where(Prediction.created_at < as_utc(until))
    return query
