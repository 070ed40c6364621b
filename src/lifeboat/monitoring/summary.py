"""What the web UI's Monitoring tab charts, read from the database every stage writes to:
every prediction by class over time, their probabilities, ingestion quality, drift
checks with each window's estimated accuracy, live accuracy from outcomes (sent or
derived), the serving version's live accuracy and ROC AUC now, and retrains.

The prediction log holds millions of rows: predictions and outcomes are counted by the
database, per time bucket or probability bin, never read row by row.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Float, Integer, case, func, literal_column, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

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
from lifeboat.monitoring.drift import corrected_threshold
from lifeboat.monitoring.live_accuracy import LiveAccuracy

RECENT_RUNS = 100
_BUCKETS = {"1min": 60, "5min": 300, "15min": 900, "1h": 3600, "6h": 21600, "1D": 86400,
            "7D": 604800}  # seconds; a bucket starts at a multiple of its size since 1970
_TARGET_BUCKETS = 60  # few enough bars to read, enough to show a trend
PROBABILITY_BINS = 20  # of 5% each


class PredictionCount(BaseModel):
    bucket: UtcDatetime
    label: str
    count: int


class ProbabilityBin(BaseModel):
    start: float  # the bin holds start <= probability < end (the last one also 1)
    end: float
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
    threshold: float  # the corrected per-feature p-value below which a feature drifted
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
    predictions: int  # every prediction of the dataset: what the two charts below count
    bucket: str | None  # of predictions_over_time: 1min, 5min, 15min, 1h, 6h, 1D or 7D
    bucket_seconds: int | None
    predictions_over_time: list[PredictionCount]
    probabilities: list[ProbabilityBin]
    quality: list[RunQuality]
    issue_counts: dict[str, int]
    drift: list[DriftPoint]
    live_accuracy: list[AccuracyPoint]
    live: LivePerformance | None  # null while no model serves
    retrains: list[RetrainPoint]


def monitoring_summary(database: Database, dataset: str,
                       live: LiveAccuracy | None = None) -> MonitoringSummary:
    """`live`: the serving version's live accuracy, which the caller knows."""
    bucket = _bucket_size(database, Prediction.created_at, Prediction.dataset == dataset)
    over_time, probabilities = (_predictions(database, dataset, bucket) if bucket
                                else ([], Counter()))
    return MonitoringSummary(
        predictions=sum(point.count for point in over_time), bucket=bucket,
        bucket_seconds=bucket and _BUCKETS[bucket], predictions_over_time=over_time,
        probabilities=_bins(probabilities),
        quality=_quality(database, dataset),
        issue_counts=_issue_counts(database, dataset),
        drift=_drift(database, dataset),
        live_accuracy=_live_accuracy(database, dataset),
        live=None if live is None else LivePerformance(
            model_version=live.model_version, accuracy=live.accuracy, roc_auc=live.roc_auc,
            samples=live.samples, heldout_accuracy=live.heldout_accuracy),
        retrains=_retrains(database, dataset),
    )


class _WholePart(FunctionElement):
    """floor() of a non-negative number as an integer, on either database: PostgreSQL's
    CAST rounds, SQLite's truncates and it may lack floor()."""

    type = Integer()
    inherit_cache = True


@compiles(_WholePart, "postgresql")
def _whole_part_postgresql(element: _WholePart, compiler: Any, **kw: Any) -> str:
    return f"CAST(floor({compiler.process(element.clauses, **kw)}) AS BIGINT)"


@compiles(_WholePart)
def _whole_part(element: _WholePart, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


class _EpochSeconds(FunctionElement):
    """Seconds since 1970 of a UTC timestamp, on either database."""

    type = Float()
    inherit_cache = True


@compiles(_EpochSeconds, "postgresql")
def _epoch_seconds_postgresql(element: _EpochSeconds, compiler: Any, **kw: Any) -> str:
    """date_part's double, not extract's numeric, whose arithmetic is slower."""
    return f"date_part('epoch', {compiler.process(element.clauses, **kw)})"


@compiles(_EpochSeconds)
def _epoch_seconds(element: _EpochSeconds, compiler: Any, **kw: Any) -> str:
    """SQLite keeps a timestamp as its UTC text."""
    return f"strftime('%s', {compiler.process(element.clauses, **kw)})"


def _bucket_number(created_at: Any, bucket: str) -> ColumnElement[int]:
    """Which bucket since 1970 a moment falls in (`_bucket_start` tells when it starts):
    one reading of the moment per row, the dearest part of the scan on SQLite. There the
    text of the seconds is divided as the integer it spells: the division is whole."""
    return _WholePart(_EpochSeconds(created_at) / _constant(_BUCKETS[bucket]))


def _constant(number: int) -> ColumnElement[int]:
    """A number written into the SQL: PostgreSQL takes a GROUP BY expression for the
    selected one only if their parameters are the same, and bound ones never are."""
    return literal_column(str(number), Integer())


def _bucket_size(database: Database, created_at: Any, *where: Any) -> str | None:
    """The smallest bucket that shows the span of the moments in at most _TARGET_BUCKETS
    bars; None when there are none. The first and the last are asked for apart, as each
    is then one lookup in an index on the moments."""
    first = select(func.min(created_at)).where(*where).scalar_subquery()
    last = select(func.max(created_at)).where(*where).scalar_subquery()
    with database.session() as session:
        first, last = session.execute(select(first, last)).one()
    if first is None:
        return None
    span = (as_utc(last) - as_utc(first)).total_seconds()
    return next((name for name, size in _BUCKETS.items() if span / size <= _TARGET_BUCKETS),
                "7D")


def _bucket_start(number: int, bucket: str) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=int(number) * _BUCKETS[bucket])


def _predictions(database: Database, dataset: str,
                 bucket: str) -> tuple[list[PredictionCount], Counter[int]]:
    """Both charts from one scan of the log: counts per (bucket, label, probability bin),
    summed here into counts per bucket and label, and per bin."""
    start = _bucket_number(Prediction.created_at, bucket).label("start")
    scaled = _WholePart(Prediction.probability * _constant(PROBABILITY_BINS))
    number = case((scaled >= _constant(PROBABILITY_BINS), _constant(PROBABILITY_BINS - 1)),
                  else_=scaled).label("bin")
    query = (select(start, Prediction.label, number, func.count())
             .where(Prediction.dataset == dataset).group_by(start, Prediction.label, number))
    with database.session() as session:
        rows = session.execute(query).all()
    over_time: Counter[tuple[int, str]] = Counter()
    bins: Counter[int] = Counter()
    for number, label, bin_number, count in rows:
        over_time[int(number), label] += count
        bins[bin_number] += count
    return [PredictionCount(bucket=_bucket_start(number, bucket), label=label, count=count)
            for (number, label), count in sorted(over_time.items())], bins


def _bins(counts: Counter[int]) -> list[ProbabilityBin]:
    """Every bin, the empty ones included."""
    return [ProbabilityBin(start=number / PROBABILITY_BINS, end=(number + 1) / PROBABILITY_BINS,
                           count=counts[number]) for number in range(PROBABILITY_BINS)]


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
                    DriftReport.p_value, DriftReport.correction,
                    DriftReport.estimated_accuracy)
             .where(DriftReport.dataset == dataset)
             .order_by(DriftReport.created_at.desc()).limit(RECENT_RUNS))
    with database.session() as session:
        rows = session.execute(query).all()
    return [DriftPoint(report_id=row.id, created_at=as_utc(row.created_at),
                       model_version=row.model_version, drifted=row.drifted,
                       drift_share=row.drift_share,
                       threshold=corrected_threshold([test["p_value"] for test in row.features],
                                                     row.p_value, row.correction),
                       p_values={test["feature"]: test["p_value"] for test in row.features},
                       estimated_accuracy=row.estimated_accuracy)
            for row in reversed(rows)]


def _live_accuracy(database: Database, dataset: str) -> list[AccuracyPoint]:
    """Accuracy of every labelled prediction per time bucket and model version."""
    labelled = (select(Prediction.created_at)
                .join(Feedback, Feedback.prediction_id == Prediction.id)
                .where(Prediction.dataset == dataset).subquery())
    bucket = _bucket_size(database, labelled.c.created_at)
    if bucket is None:
        return []
    start = _bucket_number(Prediction.created_at, bucket).label("start")
    hit = case((Prediction.prediction == Feedback.actual, 1.0), else_=0.0)
    query = (select(start, Prediction.model_version, func.avg(hit), func.count())
             .join(Feedback, Feedback.prediction_id == Prediction.id)
             .where(Prediction.dataset == dataset)
             .group_by(start, Prediction.model_version).order_by(start, Prediction.model_version))
    with database.session() as session:
        rows = session.execute(query).all()
    return [AccuracyPoint(bucket=_bucket_start(number, bucket), model_version=version,
                          accuracy=float(accuracy), samples=count)
            for number, version, accuracy, count in rows]


def _retrains(database: Database, dataset: str) -> list[RetrainPoint]:
    query = (select(Retrain).where(Retrain.dataset == dataset)
             .order_by(Retrain.started_at.desc()).limit(RECENT_RUNS))
    with database.session() as session:
        return [RetrainPoint(started_at=as_utc(row.started_at), reason=row.reason,
                             status=row.status, challenger_version=row.challenger_version)
                for row in reversed(session.scalars(query).all())]
