"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from lifeboat.monitoring.metrics import exposition
from lifeboat.serving.deps import Service

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(service: Service) -> Response:
    content, media_type = exposition(service.monitoring)
    return Response(content, media_type=media_type)


@router.get("/health", summary="The process is up")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Model loaded, features available; degraded parts named")
def ready(service: Service) -> JSONResponse:
    """Ready means predictions are served. A database that is down degrades the service
    without stopping it: predictions wait in the log (memory, then disk) and are written
    when it is back, so it is reported, not made a reason to take the instance out."""
    features, features_ready = service.feature_check()
    checks = {
        "model": "ok" if service.predictor else (service.model_error or "not loaded"),
        "database": "ok" if service.database.ping() else "degraded: unreachable",
        "prediction_log": service.prediction_log.status(),
        "features": features,
    }
    is_ready = features_ready and checks["model"] == "ok"
    body = {"status": "ready" if is_ready else "not ready", "checks": checks}
    if service.predictor:
        body["model"] = {"name": service.predictor.version.name,
                         "version": service.predictor.version.version}
    return JSONResponse(body, status_code=200 if is_ready else 503)
