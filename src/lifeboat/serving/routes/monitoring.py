"""Monitoring for people and for the web UI's charts (Grafana reads Prometheus and the DB
directly): the summary the Monitoring tab plots, and the latest drift report."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at run
# time, and `Service` is local to the factory.
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from lifeboat.db import UtcDatetime
from lifeboat.monitoring import MonitoringSummary, latest_report, monitoring_summary
from lifeboat.serving.deps import DatasetService
from lifeboat.serving.state import ServiceState


class DriftReportOut(BaseModel):
    id: int
    created_at: UtcDatetime
    model_name: str
    model_version: str
    window_start: UtcDatetime
    window_end: UtcDatetime
    window_size: int
    drifted: bool
    drift_share: float
    p_value: float
    correction: str
    features: list[dict[str, Any]]
    prediction_drift: dict[str, Any]
    estimated_accuracy: float | None  # from the window's probabilities (CBPE)


def monitoring_router(dataset: DatasetService) -> APIRouter:
    Service = dataset.annotated()
    router = APIRouter(tags=["monitoring"])

    @router.get("/monitoring/summary", response_model=MonitoringSummary,
                summary="Recent predictions by class and probability, ingestion quality, "
                        "drift, live and estimated accuracy, live ROC AUC, retrains")
    def summary(service: Service) -> MonitoringSummary:
        service.prediction_log.flush(timeout=1.0)  # the charts include the latest predictions
        return monitoring_summary(service.database, service.spec.name, service.live_accuracy())

    @router.get("/drift", response_model=DriftReportOut,
                responses={404: {"description": "No drift check has run yet"}},
                summary="The latest drift report: per-feature tests of recent inputs vs "
                        "training")
    def drift(service: Service) -> DriftReportOut:
        return DriftReportOut.model_validate(_latest(service), from_attributes=True)

    @router.get("/drift/report", response_class=HTMLResponse,
                responses={404: {"description": "No drift check has run yet"}},
                summary="The latest drift report as a page, with reference vs recent plots")
    def drift_report(service: Service) -> HTMLResponse:
        return HTMLResponse(_latest(service).html)

    return router


def _latest(service: ServiceState) -> Any:
    report = latest_report(service.database, service.spec.name)
    if report is None:
        raise HTTPException(404, detail="no drift check has run yet: the service runs one "
                            "every LIFEBOAT_DRIFT_CHECK_SECONDS once enough predictions are "
                            "logged, or run `lifeboat drift`")
    return report
