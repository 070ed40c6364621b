"""Monitoring data for the web UI's charts (Grafana reads Prometheus and the DB directly)."""

from __future__ import annotations

from fastapi import APIRouter

from lifeboat.monitoring import MonitoringSummary, monitoring_summary
from lifeboat.serving.deps import Service

router = APIRouter(tags=["monitoring"])


@router.get("/monitoring/summary", response_model=MonitoringSummary,
            summary="Recent predictions by class and probability, and ingestion quality")
def summary(service: Service) -> MonitoringSummary:
    service.prediction_log.flush(timeout=1.0)  # the charts include the latest predictions
    return monitoring_summary(service.database, service.spec.name)
