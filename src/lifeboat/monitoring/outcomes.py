"""Outcomes that come by themselves: for a dataset whose target is a future event (the spec's
`label`), a logged prediction about an entity is labelled by that entity's later events, as
training labels a snapshot at a cut-off, with no /feedback call.

A prediction made at t is labelled once the newest event loaded is at or after t + horizon:
1 when a label event falls in (t, t + horizon], else 0. Not before: until then a 0 is not
known, and labelling the early 1s alone would bias live accuracy upward.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import exists, select
from sqlalchemy.dialects import postgresql, sqlite

from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, Feedback, OutcomeProgress, Prediction, as_utc, utcnow
from lifeboat.features import labels_after, newest_event_loaded

log = logging.getLogger(__name__)

PER_TURN = 5000  # predictions labelled per turn at most: a backlog drains over several


def derive_outcomes(database: Database, spec: DatasetSpec, limit: int = PER_TURN) -> int:
    """Labels the newest `limit` predictions by entity whose label period is over and that
    have no outcome yet; returns how many outcomes it stored. An outcome a caller sent
    through /feedback is never replaced, and a rerun finds nothing left to label."""
    if spec.label is None:
        return 0
    newest = newest_event_loaded(database, spec)
    if newest is None:
        return 0
    horizon = timedelta(days=spec.label.horizon_days)
    decided_until = newest - horizon
    waiting = _waiting(database, spec.name, _labelled_until(database, spec.name),
                       decided_until, limit)
    derived = 0
    if not waiting.empty:
        labels = labels_after(database, spec, waiting["entity_id"].tolist(),
                              waiting["created_at"].tolist())
        derived = _store(database, waiting["id"].tolist(), labels.tolist())
        log.info("%s: %d outcomes derived from events up to %s", spec.name, derived, newest)
    if len(waiting) < limit:
        # The log may still be writing predictions made within the last horizon (a batch,
        # a spill while the database was down): the mark never passes them.
        _advance(database, spec.name, min(decided_until, utcnow() - horizon))
    return derived


def _labelled_until(database: Database, dataset: str) -> datetime | None:
    with database.session() as session:
        until = session.scalar(select(OutcomeProgress.labelled_until)
                               .where(OutcomeProgress.dataset == dataset))
    return None if until is None else as_utc(until)


def _waiting(database: Database, dataset: str, since: datetime | None,
             decided_until: datetime, limit: int) -> pd.DataFrame:
    """Predictions by entity made in (since, decided_until] without an outcome, newest
    first: a range of the (dataset, created_at) index."""
    query = (select(Prediction.id, Prediction.entity_id, Prediction.created_at)
             .where(Prediction.dataset == dataset, Prediction.entity_id.is_not(None),
                    Prediction.created_at <= decided_until,
                    ~exists().where(Feedback.prediction_id == Prediction.id))
             .order_by(Prediction.created_at.desc()).limit(limit))
    if since is not None:
        query = query.where(Prediction.created_at > since)
    with database.session() as session:
        rows = session.execute(query).all()
    return pd.DataFrame(rows, columns=["id", "entity_id", "created_at"])


def _store(database: Database, predictions: list[str], labels: list[int]) -> int:
    """Inserts the outcomes, skipping any prediction that got one meanwhile (a caller's,
    or another process's turn)."""
    received = utcnow()
    rows = [{"prediction_id": prediction, "actual": label, "received_at": received,
             "source": "derived"} for prediction, label in zip(predictions, labels, strict=True)]
    table = Feedback.__table__
    statement = (_insert(database, table).on_conflict_do_nothing(index_elements=["prediction_id"])
                 .returning(table.c.prediction_id))
    with database.session() as session:
        return len(session.execute(statement, rows).all())


def _advance(database: Database, dataset: str, until: datetime) -> None:
    """Moves the dataset's mark forward to `until`, never back (turns may overlap)."""
    statement = _insert(database, OutcomeProgress).values(dataset=dataset, labelled_until=until)
    statement = statement.on_conflict_do_update(
        index_elements=["dataset"], set_={"labelled_until": statement.excluded.labelled_until},
        where=OutcomeProgress.labelled_until < statement.excluded.labelled_until)
    with database.session() as session:
        session.execute(statement)


def _insert(database: Database, table: Any) -> Any:
    """The dialect's INSERT, which can skip or update a row already there."""
    dialect = postgresql if database.engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
