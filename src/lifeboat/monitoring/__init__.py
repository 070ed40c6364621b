"""Monitoring: the Prometheus metrics every stage reports into."""

from lifeboat.monitoring.metrics import INGESTED_ROWS, VALIDATION_ISSUES

__all__ = ["INGESTED_ROWS", "VALIDATION_ISSUES"]
