"""Monitoring: the Prometheus metrics every stage reports into, and the summaries the UI charts."""

from lifeboat.monitoring.metrics import INGESTED_ROWS, VALIDATION_ISSUES
from lifeboat.monitoring.summary import MonitoringSummary, monitoring_summary

__all__ = ["INGESTED_ROWS", "VALIDATION_ISSUES", "MonitoringSummary", "monitoring_summary"]
