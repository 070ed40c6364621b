"""Liveness, readiness and the Prometheus exposition: one each for the whole process,
whatever the number of datasets it serves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from lifeboat.monitoring.metrics import exposition
from lifeboat.serving.deps import Services
from lifeboat.serving.state import ServiceState

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(services: Services) -> Response:
    content, media_type = exposition(*(service.monitoring for service in services.values()))
    return Response(content, media_type=media_type)


@router.get("/health", summary="The process is up")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Every dataset's model loaded and features available; "
                              "degraded parts named")
def ready(services: Services) -> JSONResponse:
    """Ready means every served dataset's predictions are served: one dataset without a
    usable champion keeps the instance out of rotation, as a rolling update with a broken
    dataset should stop instead of replacing instances that work. `datasets` says which.

    The top-level `checks` and `model` are the default dataset's, as with one dataset. A
    database that is down degrades the service without stopping it: predictions wait in the
    log (memory, then disk) and are written when it is back, so it is reported, not made a
    reason to take the instance out."""
    default = next(iter(services.values()))
    shared = {"database": "ok" if default.database.ping() else "degraded: unreachable",
              "prediction_log": default.prediction_log.status()}
    reports = {name: _readiness(service) for name, service in services.items()}
    is_ready = all(report["status"] == "ready" for report in reports.values())
    own = reports[default.spec.name]
    body = {**own, "status": "ready" if is_ready else "not ready",
            "checks": {"model": own["checks"]["model"], **shared,
                       "features": own["checks"]["features"]},
            "datasets": reports}
    return JSONResponse(body, status_code=200 if is_ready else 503)


def _readiness(service: ServiceState) -> dict[str, Any]:
    """One dataset's own checks: its model, and its features in the online store."""
    features, features_ready = service.feature_check()
    model = "ok" if service.predictor else (service.model_error or "not loaded")
    report: dict[str, Any] = {
        "status": "ready" if features_ready and model == "ok" else "not ready",
        "checks": {"model": model, "features": features}}
    if service.predictor:
        report["model"] = {"name": service.predictor.version.name,
                           "version": service.predictor.version.version}
    return report
