"""Relational storage: one Database handle, Alembic-migrated system tables, spec-derived data tables."""

from lifeboat.db.migrate import upgrade
from lifeboat.db.models import (
    Base,
    ChampionChange,
    DriftReport,
    Feedback,
    IngestionIssue,
    IngestionRun,
    JobRun,
    OutcomeProgress,
    Prediction,
    Retrain,
    ScoredFile,
)
from lifeboat.db.session import Database
from lifeboat.db.tables import dataset_table, ensure_dataset_table

__all__ = [
    "Base",
    "ChampionChange",
    "Database",
    "DriftReport",
    "Feedback",
    "IngestionIssue",
    "IngestionRun",
    "JobRun",
    "OutcomeProgress",
    "Prediction",
    "Retrain",
    "ScoredFile",
    "dataset_table",
    "ensure_dataset_table",
    "upgrade",
]
