"""Relational storage: one Database handle, Alembic-migrated system tables, spec-derived data tables."""

from lifeboat import lazy_exports
from lifeboat.db.claims import holder_is_gone, this_process
from lifeboat.db.models import (
    DUPLICATE_RUN,
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
    UtcDatetime,
    as_utc,
    utcnow,
)
from lifeboat.db.session import Database, ensure_database
from lifeboat.db.tables import (
    INGESTION_RUN_COLUMN,
    LOADED_AT_COLUMN,
    STORED_INTEGER_MAX,
    dataset_table,
    ensure_dataset_table,
)

# Bulk loading (pandas, Arrow) and migrations (Alembic) are imported when first used: reading
# a few rows, as `lifeboat jobs` does, needs neither.
__getattr__ = lazy_exports(__name__, {
    "bulk": ("deferred_primary_key", "insert_rows", "insert_table", "loaded_keys", "read_frames"),
    "migrate": ("upgrade",),
})

__all__ = [
    "DUPLICATE_RUN",
    "INGESTION_RUN_COLUMN",
    "LOADED_AT_COLUMN",
    "STORED_INTEGER_MAX",
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
    "UtcDatetime",
    "as_utc",
    "dataset_table",
    "deferred_primary_key",
    "ensure_database",
    "ensure_dataset_table",
    "holder_is_gone",
    "insert_rows",
    "insert_table",
    "loaded_keys",
    "read_frames",
    "this_process",
    "upgrade",
    "utcnow",
]
