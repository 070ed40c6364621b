"""Lifeboat's own tables. Dataset tables (e.g. `passengers`) are derived from specs: see tables.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC; SQLite hands back naive times for what was stored as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
"""A time in an API answer: always in UTC with its zone (`...Z`), whatever the database
handed back, as the OpenAPI `date-time` format (RFC 3339) requires and browsers need."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


DUPLICATE_RUN = "duplicate"  # an ingestion run whose content an earlier run loaded


class IngestionRun(Base):
    """One attempt to load one file. A succeeded run's checksum makes re-ingesting it a no-op,
    recorded as a run of status `DUPLICATE_RUN` that loads nothing."""

    __tablename__ = "ingestion_runs"
    __table_args__ = (
        Index(
            "uq_ingestion_runs_succeeded_content",
            "dataset",
            "checksum",
            unique=True,
            sqlite_where=text("status = 'succeeded'"),
            postgresql_where=text("status = 'succeeded'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(100), index=True)
    source: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_loaded: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rows_duplicate: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    # Which process runs it: a run left `running` by a process that died can be told apart.
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)


class IngestionIssue(Base):
    """One bad cell (or unreadable line) of an ingested file, and why it was rejected."""

    __tablename__ = "ingestion_issues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ingestion_runs.id", ondelete="CASCADE"),
                                        index=True)
    row: Mapped[int | None] = mapped_column(Integer)
    column: Mapped[str | None] = mapped_column(String(100))
    issue: Mapped[str] = mapped_column(String(40), index=True)
    value: Mapped[str | None] = mapped_column(Text)


class Prediction(Base):
    """Every prediction served, whatever the route or source."""

    __tablename__ = "predictions"
    # Every query of the log filters by dataset and reads newest first (see migration 0006).
    # The source index finds a rare source's rows; on PostgreSQL it leaves out the batch rows
    # that `lifeboat predict` logs by the million (see migration 0008).
    __table_args__ = (
        Index("ix_predictions_dataset_created_at", "dataset", "created_at"),
        Index("ix_predictions_source", "source", postgresql_where=text("source <> 'batch'")),
    )

    # On PostgreSQL compared byte by byte (COLLATE "C", migration 0006): the type leaves it
    # out, as code that casts to the column's type (the serving log's unnest) needs a bare one.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    dataset: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(20))
    # The entity scored: the id asked for, or the key a record or file row carried.
    entity_id: Mapped[str | None] = mapped_column(String(64))
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The feature-view row the model scored, missing values as null (migration 0009); null
    # for predictions logged before.
    features: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    prediction: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(100))
    probability: Mapped[float] = mapped_column(Float)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(20))
    latency_ms: Mapped[float] = mapped_column(Float)


class Feedback(Base):
    """The true outcome of a logged prediction, once it is known: live accuracy's input.

    One per prediction. `source` says who knew it: `api`, a caller of /feedback, whose later
    answer replaces an earlier one; or `derived`, read off the entity's later events by the
    dataset's label rule, which never replaces an answer a caller sent (migration 0011).
    """

    __tablename__ = "feedback"

    prediction_id: Mapped[str] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True)
    actual: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    source: Mapped[str] = mapped_column(String(20), default="api", server_default="api")


class OutcomeProgress(Base):
    """How far deriving outcomes has come for a dataset: every prediction made up to
    `labelled_until` has an outcome, or has no entity to read one from. Each turn then looks
    only at the predictions after it, however long the log grows."""

    __tablename__ = "outcome_progress"

    dataset: Mapped[str] = mapped_column(String(100), primary_key=True)
    labelled_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DriftReport(Base):
    """One windowed drift check: the recent predictions' inputs tested against the serving
    model's training reference, per feature, with the page a person reads."""

    __tablename__ = "drift_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 index=True)
    dataset: Mapped[str] = mapped_column(String(100), index=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(20))
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_size: Mapped[int] = mapped_column(Integer)
    drifted: Mapped[bool] = mapped_column(Boolean)
    drift_share: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float] = mapped_column(Float)
    correction: Mapped[str] = mapped_column(String(20))
    features: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    prediction_drift: Mapped[dict[str, Any]] = mapped_column(JSON)
    html: Mapped[str] = mapped_column(Text)
    # The window's accuracy expected from its calibrated probabilities (CBPE), at the
    # serving threshold: performance without labels (migration 0011; null before).
    estimated_accuracy: Mapped[float | None] = mapped_column(Float)
    # What each test compared, as the page plots it (`monitoring.drift.distributions`;
    # migration 0012; null before).
    distributions: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


class Retrain(Base):
    """One retraining, whatever started it, from claim to outcome.

    At most one runs per dataset at a time, across processes: the partial unique index
    refuses a second `running` row, so the claim is the insert itself.
    """

    __tablename__ = "retrains"
    __table_args__ = (
        Index("uq_retrains_running", "dataset", unique=True,
              postgresql_where=text("status = 'running'"),
              sqlite_where=text("status = 'running'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(100), index=True)
    reason: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    champion_version: Mapped[str | None] = mapped_column(String(20))
    challenger_version: Mapped[str | None] = mapped_column(String(20))
    drift_report_id: Mapped[int | None] = mapped_column(
        ForeignKey("drift_reports.id", ondelete="SET NULL"))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class JobRun(Base):
    """One run of a job (ingest, score, drift, pipeline), whoever triggered it: the CLI, the
    embedded scheduler or watcher, or Airflow. What the UI's job list and metrics show."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(100))
    job: Mapped[str] = mapped_column(String(40))
    trigger: Mapped[str] = mapped_column(String(20))  # cli | schedule | watch | airflow | api
    status: Mapped[str] = mapped_column(String(20))   # running | succeeded | failed
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)


class ScoredFile(Base):
    """A good/ file's scoring, claimed before it starts: one row per file, ever, so two
    schedulers cannot both score it. A claim whose process died is taken over; the
    predictions' ids derive from the file and model, so the rerun logs only what is missing."""

    __tablename__ = "scored_files"
    __table_args__ = (Index("uq_scored_files_file", "dataset", "file", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(100))
    file: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))  # running | succeeded | failed
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    model_version: Mapped[str | None] = mapped_column(String(20))
    predictions: Mapped[int] = mapped_column(Integer, default=0)
    output: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class ChampionChange(Base):
    """One change of a dataset's champion: from which version to which, when, by whom
    (training, retrain, pipeline, cli, api) and why, with the gate's evidence when a
    comparison decided it. What `lifeboat models history`, /models/history and rollback read."""

    __tablename__ = "champion_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(100), index=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    from_version: Mapped[str | None] = mapped_column(String(20))
    to_version: Mapped[str] = mapped_column(String(20))
    changed_by: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
