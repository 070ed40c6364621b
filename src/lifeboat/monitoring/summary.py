"""What the web UI's Monitoring tab charts, read from the database every stage writes to:
recent predictions by class over time, their probabilities, ingestion quality, drift
checks with each window's estimated accuracy, live accuracy from outcomes (sent or
derived), the serving version's live accuracy and ROC AUC now, and retrains."""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel
from sqlalchemy import func, select

from lifeboat.db import (
    DUPLICATE_RUN,
    Database,
    DriftReport,
    Feedback,
    IngestionIssue,
    IngestionRun,
    Prediction,
    Retrain,
    UtcDatetime,
    as_utc,
)
from lifeboat.monitoring.live_accuracy import LiveAccuracy

RECENT_PREDICTIONS = 5000
RECENT_RUNS = 100
_BUCKETS = ["1min", "5min", "15min", "1h", "6h", "1D", "7D"]
_TARGET_BUCKETS = 60  # few enough bars to read, enough to show a trend


class PredictionCount(BaseModel):
    bucket: UtcDatetime
    label: str
    count: int


class RunQuality(BaseModel):
    run_id: int
    file: str
    status: str
    finished_at: UtcDatetime | None
    rows_total: int
    rows_loaded: int
    rows_rejected: int
    invalid_share: float


class DriftPoint(BaseModel):
    report_id: int
    created_at: UtcDatetime
    model_version: str
    drifted: bool
    drift_share: float
    threshold: float  # the per-feature p-value below which a feature counts as drifted
    p_values: dict[str, float | None]
    estimated_accuracy: float | None  # the window's, from its probabilities (CBPE)


class AccuracyPoint(BaseModel):
    bucket: UtcDatetime
    model_version: str
    accuracy: float
    samples: int


class LivePerformance(BaseModel):
    """The serving version's performance on its latest labelled predictions, as /metrics
    exposes it (`lifeboat_live_accuracy`, `lifeboat_live_roc_auc`)."""

    model_version: str
    accuracy: float | None
    roc_auc: float | None  # null unless both classes are among the outcomes
    samples: int
    heldout_accuracy: float | None


class RetrainPoint(BaseModel):
    started_at: UtcDatetime
    reason: str
    status: str
    challenger_version: str | None


class MonitoringSummary(BaseModel):
    bucket: str | None
    predictions_over_time: list[PredictionCount]
    probabilities: list[float]
    quality: list[RunQuality]
    issue_counts: dict[str, int]
    drift: list[DriftPoint]
    live_accuracy: list[AccuracyPoint]
    live: LivePerformance | None  # null while no model serves
    retrains: list[RetrainPoint]


def monitoring_summary(database: Database, dataset: str,
                       live: LiveAccuracy | None = None) -> MonitoringSummary:
    """`live`: the serving version's live accuracy, which the caller knows."""
    recent = _recent_predictions(database, dataset)
    bucket = _bucket_size(recent["created_at"]) if len(recent) else None
    return MonitoringSummary(
        bucket=bucket,
        predictions_over_time=_counts(recent, bucket) if bucket else [],
        probabilities=recent["probability"].round(4).tolist(),
        quality=_quality(database, dataset),
        issue_counts=_issue_counts(database, dataset),
        drift=_drift(database, dataset),
        live_accuracy=_live_accuracy(database, dataset),
        live=None if live is None else LivePerformance(
            model_version=live.model_version, accuracy=live.accuracy, roc_auc=live.roc_auc,
            samples=live.samples, heldout_accuracy=live.heldout_accuracy),
        retrains=_retrains(database, dataset),
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
    # A duplicate loaded nothing: it is listed with the ingest job's run, not charted here.
    query = (select(IngestionRun).where(IngestionRun.dataset == dataset,
                                        IngestionRun.status.not_in(("running", DUPLICATE_RUN)))
             .order_by(IngestionRun.id.desc()).limit(RECENT_RUNS))
    with database.session() as session:
        runs = session.scalars(query).all()
        return [RunQuality(
            run_id=run.id, file=run.source.rsplit("/", 1)[-1], status=run.status,
            finished_at=run.finished_at and as_utc(run.finished_at), rows_total=run.rows_total or 0,
            rows_loaded=run.rows_loaded or 0, rows_rejected=run.rows_rejected or 0,
            invalid_share=(run.rows_rejected or 0) / run.rows_total if run.rows_total else 0.0,
        ) for run in reversed(runs)]


def _issue_counts(database: Database, dataset: str) -> dict[str, int]:
    query = (select(IngestionIssue.issue, func.count())
             .join(IngestionRun, IngestionRun.id == IngestionIssue.run_id)
             .where(IngestionRun.dataset == dataset).group_by(IngestionIssue.issue))
    with database.session() as session:
        return {issue: count for issue, count in session.execute(query).all()}


def _drift(database: Database, dataset: str) -> list[DriftPoint]:
    query = (select(DriftReport.id, DriftReport.created_at, DriftReport.model_version,
                    DriftReport.drifted, DriftReport.drift_share, DriftReport.features,
                    DriftReport.estimated_accuracy)
             .where(DriftReport.dataset == dataset)
             .order_by(DriftReport.created_at.desc()).limit(RECENT_RUNS))
    with database.session() as session:
        rows = session.execute(query).all()
    return [DriftPoint(report_id=row.id, created_at=as_utc(row.created_at),
                       model_version=row.model_version, drifted=row.drifted,
                       drift_share=row.drift_share, threshold=_threshold(row.features),
                       p_values={test["feature"]: test["p_value"] for test in row.features},
                       estimated_accuracy=row.estimated_accuracy)
            for row in reversed(rows)]


def _threshold(features: list[dict]) -> float:
    """The largest p-value flagged, else the smallest not flagged: where the corrected
    cut-off lies, as near as the report shows it."""
    flagged = [t["p_value"] for t in features if t["drifted"] and t["p_value"] is not None]
    kept = [t["p_value"] for t in features if not t["drifted"] and t["p_value"] is not None]
    return max(flagged) if flagged else min(kept, default=0.0)


def _live_accuracy(database: Database, dataset: str) -> list[AccuracyPoint]:
    """Accuracy of labelled predictions per time bucket and model version."""
    query = (select(Prediction.created_at, Prediction.model_version, Prediction.prediction,
                    Feedback.actual)
             .join(Feedback, Feedback.prediction_id == Prediction.id)
             .where(Prediction.dataset == dataset)
             .order_by(Prediction.created_at.desc()).limit(RECENT_PREDICTIONS))
    with database.session() as session:
        labelled = pd.DataFrame(session.execute(query).all(),
                                columns=["created_at", "model_version", "prediction", "actual"])
    if labelled.empty:
        return []
    labelled["created_at"] = pd.to_datetime(labelled["created_at"], utc=True)
    labelled["hit"] = labelled["prediction"] == labelled["actual"]
    bucket = labelled["created_at"].dt.floor(_bucket_size(labelled["created_at"]))
    grouped = labelled.groupby([bucket, "model_version"])["hit"].agg(["mean", "size"])
    return [AccuracyPoint(bucket=moment.to_pydatetime(), model_version=version,
                          accuracy=mean, samples=size)
            for (moment, version), (mean, size) in grouped.iterrows()]


def _retrains(database: Database, dataset: str) -> list[RetrainPoint]:
    query = (select(Retrain).where(Retrain.dataset == dataset)
             .order_by(Retrain.started_at.desc()).limit(RECENT_RUNS))
    with database.session() as session:
        return [RetrainPoint(started_at=as_utc(row.started_at), reason=row.reason,
                             status=row.status, challenger_version=row.challenger_version)
                for row in reversed(session.scalars(query).all())]
