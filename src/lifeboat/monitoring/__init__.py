"""Monitoring: drift checks of served windows, outcomes and live accuracy, and the
summaries the UI charts. (The Prometheus instruments every stage counts into are
`lifeboat.metrics`, below every stage.)"""

from lifeboat.monitoring.collector import MonitoringCollector
from lifeboat.monitoring.drift import corrected_threshold
from lifeboat.monitoring.drift_check import (
    DriftCheckUnavailable,
    check_drift,
    checked_recently,
    drift_report,
    drift_reports,
    latest_report,
)
from lifeboat.monitoring.live_accuracy import LiveAccuracy, version_live_accuracy
from lifeboat.monitoring.outcomes import derive_outcomes
from lifeboat.monitoring.summary import MonitoringSummary, monitoring_summary

__all__ = [
    "DriftCheckUnavailable",
    "LiveAccuracy",
    "MonitoringCollector",
    "MonitoringSummary",
    "check_drift",
    "checked_recently",
    "corrected_threshold",
    "derive_outcomes",
    "drift_report",
    "drift_reports",
    "latest_report",
    "monitoring_summary",
    "version_live_accuracy",
]
