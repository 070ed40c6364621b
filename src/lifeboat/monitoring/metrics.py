"""Prometheus metrics, named by Prometheus conventions (counters end in `_total`).

They live in the default registry of the process that does the work; the service exposes
that registry at /metrics.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

INGESTED_ROWS = Counter(
    "lifeboat_ingested_rows", "Rows read by ingestion, by outcome.", ["status"]
)
VALIDATION_ISSUES = Counter(
    "lifeboat_validation_issues", "Problems found by row-level validation, by issue type.",
    ["issue"]
)
PREDICTION_LOG_PENDING = Gauge(
    "lifeboat_prediction_log_pending",
    "Served predictions not yet in the database: queued in memory, or spilled to disk.",
    ["where"],
)
PREDICTION_LOG_WRITTEN = Counter(
    "lifeboat_prediction_log_written", "Predictions written to the database by the log's writer."
)
PREDICTION_LOG_SPILLED = Counter(
    "lifeboat_prediction_log_spilled",
    "Predictions spilled to disk because the database could not take them (or the queue was full).",
)
PREDICTION_LOG_REJECTED = Counter(
    "lifeboat_prediction_log_rejected",
    "Predictions the database refused outright (a value it will never take), set aside on disk.",
)
