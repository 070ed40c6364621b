"""Prometheus metrics, named by Prometheus conventions (counters end in `_total`).

They live in the default registry of the process that does the work; the service exposes
that registry at /metrics.
"""

from __future__ import annotations

from prometheus_client import Counter

INGESTED_ROWS = Counter(
    "lifeboat_ingested_rows", "Rows read by ingestion, by outcome.", ["status"]
)
VALIDATION_ISSUES = Counter(
    "lifeboat_validation_issues", "Problems found by row-level validation, by issue type.",
    ["issue"]
)
