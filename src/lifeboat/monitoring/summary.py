"""What the web UI's Monitoring tab charts, read from the database every stage writes to:
recent predictions by class over time, their probabilities, and ingestion quality."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from pydantic import BaseModel
from sqlalchemy import func, select

from lifeboat.db import Database, IngestionIssue, IngestionRun, Prediction

RECENT_PREDICTIONS = 5000
RECENT_RUNS = 100
_BUCKETS = ["1min", "5min", "15min", "1h", "6h", "1D", "7D"]
_TARGET_BUCKETS = 60  # few enough bars to read, enough to show a trend


class PredictionCount(BaseModel):
    bucket: datetime
    label: str
    count: int


class RunQuality(BaseModel):
    run_id: int
    file: str
    status: str
    finished_at: datetime | None
    rows_total: int
    rows_loaded: int
    rows_rejected: int
    invalid_share: float


class MonitoringSummary(BaseModel):
    bucket: str | None
    predictions_over_time: list[PredictionCount]
    probabilities: list[float]
    quality: list[RunQuality]
    issue_counts: dict[str, int]


def monitoring_summary(database: Database, dataset: str) -> MonitoringSummary:
    recent = _recent_predictions(database, dataset)
    bucket = _bucket_size(recent["created_at"]) if len(recent) else None
    return MonitoringSummary(
        bucket=bucket,
        predictions_over_time=_counts(recent, bucket) if bucket else [],
        probabilities=recent["probability"].round(4).tolist(),
        quality=_quality(database, dataset),
        issue_counts=_issue_counts(database, dataset),
    )


def _recent_predictions(database: Database, dataset: str) -> pd.DataFrame:
    query = (select(Prediction.created_at, Prediction.label, Prediction.probability)
             .where(Prediction.dataset == dataset)
             .order_by(Prediction.created_at.desc()).limit(RECENT_PREDICTIONS))
    with database.session() as session:
        rows = session.execute(query).all()
    frame = pd.DataFrame(rows, columns=["created_at", "label", "probability"])
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)  # SQLite: naive UTC
    return frame


def _bucket_size(moments: pd.Series) -> str:
    span = moments.max() - moments.min()
    return next((size for size in _BUCKETS if span / pd.Timedelta(size) <= _TARGET_BUCKETS),
                _BUCKETS[-1])


def _counts(recent: pd.DataFrame, bucket: str) -> list[PredictionCount]:
    counted = (recent.assign(bucket=recent["created_at"].dt.floor(bucket))
               .groupby(["bucket", "label"]).size().reset_index(name="count"))
    return [PredictionCount(bucket=row.bucket.to_pydatetime(), label=row.label, count=row.count)
            for row in counted.itertuples(index=False)]


def _quality(database: Database, dataset: str) -> list[RunQuality]:
    query = (select(IngestionRun).where(IngestionRun.dataset == dataset,
                                        IngestionRun.status != "running")
             .order_by(IngestionRun.id.desc()).limit(RECENT_RUNS))
    with database.session() as session:
        runs = session.scalars(query).all()
        return [RunQuality(
            run_id=run.id, file=run.source.rsplit("/", 1)[-1], status=run.status,
            finished_at=run.finished_at and _utc(run.finished_at), rows_total=run.rows_total or 0,
            rows_loaded=run.rows_loaded or 0, rows_rejected=run.rows_rejected or 0,
            invalid_share=(run.rows_rejected or 0) / run.rows_total if run.rows_total else 0.0,
        ) for run in reversed(runs)]


def _issue_counts(database: Database, dataset: str) -> dict[str, int]:
    query = (select(IngestionIssue.issue, func.count())
             .join(IngestionRun, IngestionRun.id == IngestionIssue.run_id)
             .where(IngestionRun.dataset == dataset).group_by(IngestionIssue.issue))
    with database.session() as session:
        return {issue: count for issue, count in session.execute(query).all()}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
