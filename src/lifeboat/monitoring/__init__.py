"""Monitoring: drift checks of served windows, outcomes and live accuracy, and the
summaries the UI charts. (The Prometheus instruments every stage counts into are
`lifeboat.metrics`, below every stage.)"""

from lifeboat.monitoring.summary import MonitoringSummary, monitoring_summary

__all__ = ["MonitoringSummary", "monitoring_summary"]
