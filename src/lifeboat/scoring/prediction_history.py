"""The prediction log read back: every prediction with its true outcome once known, one at a
time, a page at a time or all of a filter's rows for an export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from lifeboat.db import Database, Feedback, Prediction, as_utc, utcnow

_COLUMNS = [column.key for column in Prediction.__table__.columns]
EXPORT_CHUNK = 2_000  # rows read at a time while an export streams


@dataclass(frozen=True)
class PredictionFilter:
    """Which logged predictions a page or an export holds: the same for both, so an export
    has exactly the rows the page was paging through."""

    dataset: str
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def applied(self, query: Select) -> Select:
        query = query.where(Prediction.dataset == self.dataset)
        if self.source is not None:
            query = query.where(Prediction.source == self.source)
        if self.since is not None:
            query = query.where(Prediction.created_at >= as_utc(self.since))
        if self.until is not None:
            query = query.where(Prediction.created_at < as_utc(self.until))
        return query


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
                     limit: int = 100, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """Newest first, ties broken by id, so paging with offset never repeats or skips a row;
    each with its outcome (`actual`, `outcome_source`), None while unknown."""
    where = PredictionFilter(dataset, source, since, until)
    counted = where.applied(select(func.count()).select_from(Prediction))
    with database.session() as session:
        total = session.scalar(counted) or 0
        rows = session.execute(_newest_first(where).limit(limit).offset(offset)).all()
        return total, [_logged(row) for row in rows]


def logged_prediction(database: Database, dataset: str, prediction_id: str) -> dict[str, Any] | None:
    """One logged prediction of the dataset with its outcome; None when none has this id."""
    query = _with_outcome(select(Prediction)).where(Prediction.dataset == dataset,
                                                    Prediction.id == prediction_id)
    with database.session() as session:
        row = session.execute(query).first()
        return None if row is None else _logged(row)


def exported_predictions(database: Database, where: PredictionFilter) -> Iterator[list[dict[str, Any]]]:
    """Every prediction the filter holds, newest first, a chunk at a time: an export of
    millions of batch rows never sits in memory whole."""
    with database.session() as session:
        rows = session.execute(_newest_first(where).execution_options(yield_per=EXPORT_CHUNK))
        for chunk in rows.partitions():
            yield [_logged(row) for row in chunk]


def _newest_first(where: PredictionFilter) -> Select:
    return where.applied(_with_outcome(select(Prediction))).order_by(
        Prediction.created_at.desc(), Prediction.id.desc())


def _with_outcome(query: Select) -> Select:
    return query.add_columns(Feedback.actual, Feedback.source).outerjoin(
        Feedback, Feedback.prediction_id == Prediction.id)


def _logged(row: Any) -> dict[str, Any]:
    prediction, actual, outcome_source = row
    logged = {key: getattr(prediction, key) for key in _COLUMNS}
    logged["created_at"] = as_utc(prediction.created_at)
    return {**logged, "actual": actual, "outcome_source": outcome_source}
