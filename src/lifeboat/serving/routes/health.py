"""Liveness, readiness and the Prometheus exposition: one each for the whole process,
whatever the number of datasets it serves."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from lifeboat.metrics import exposition
from lifeboat.serving.deps import Services
from lifeboat.serving.state import ServiceState

router = APIRouter(tags=["operations"])

CHECK_SECONDS = 1.5  # each dependency's check; they run side by side, so /ready answers in < 2 s
T = TypeVar("T")
_checks = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lifeboat-ready")
_running: dict[tuple[str, int], Future[Any]] = {}
_running_lock = threading.Lock()


@router.get("/metrics", include_in_schema=False)
def metrics(services: Services) -> Response:
    content, media_type = exposition(*(service.monitoring for service in services.values()))
    return Response(content, media_type=media_type)


@router.get("/health", summary="The process is up")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Every dataset's model loaded and features available; "
                              "degraded parts named")
async def ready(services: Services) -> JSONResponse:
    """Ready means every served dataset's predictions are served: one dataset without a
    usable champion keeps the instance out of rotation, as a rolling update with a broken
    dataset should stop instead of replacing instances that work. `datasets` says which.

    The top-level `checks` and `model` are the default dataset's, as with one dataset. A
    database that is down degrades the service without stopping it: predictions wait in
    the journal and are written when it is back, so it is reported, not made a reason to
    take the instance out. A dependency that does not answer within `CHECK_SECONDS` (a
    hung connection) is named as not ready: the requests that need it would hang too."""
    default = next(iter(services.values()))
    database, *features = await asyncio.gather(
        _bounded("database", default.database, default.database.ping),
        *(_bounded("features", service, service.feature_check)
          for service in services.values()))
    shared = {"database": _database_check(database),
              "prediction_log": default.prediction_log.status()}
    reports = {name: _readiness(service, checked)
               for (name, service), checked in zip(services.items(), features, strict=True)}
    is_ready = (all(report["status"] == "ready" for report in reports.values())
                and database is not None)
    own = reports[default.spec.name]
    body = {**own, "status": "ready" if is_ready else "not ready",
            "checks": {"model": own["checks"]["model"], **shared,
                       "features": own["checks"]["features"]},
            "datasets": reports}
    return JSONResponse(body, status_code=200 if is_ready else 503)


async def _bounded(kind: str, owner: object, check: Callable[[], T]) -> T | None:
    """The check's answer, or None when it gave none within `CHECK_SECONDS`. A check still
    running from an earlier /ready is waited on again, not started anew: a dependency that
    hangs holds one thread, however often /ready is asked."""
    key = (kind, id(owner))
    with _running_lock:
        future = _running.get(key)
        started = future is None or future.done()
        if started:
            future = _running[key] = _checks.submit(check)
    if started:  # outside the lock: the callback runs at once if the check is already done
        future.add_done_callback(lambda done: _forget(key, done))
    try:
        return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                      CHECK_SECONDS)
    except TimeoutError:
        return None


def _forget(key: tuple[str, int], done: Future[Any]) -> None:
    with _running_lock:
        if _running.get(key) is done:
            del _running[key]


def _database_check(reachable: bool | None) -> str:
    if reachable is None:
        return f"not ready: no answer within {CHECK_SECONDS:g} s"
    return "ok" if reachable else "degraded: unreachable"


def _readiness(service: ServiceState, features: tuple[str, bool] | None) -> dict[str, Any]:
    """One dataset's own checks: its model, and its features in the online store."""
    if features is None:
        silent = f"not ready: the online store {service.store.url} gave no answer within"
        features = (f"{silent} {CHECK_SECONDS:g} s", False)
    checked, features_ready = features
    model = "ok" if service.predictor else (service.model_error or "not loaded")
    report: dict[str, Any] = {
        "status": "ready" if features_ready and model == "ok" else "not ready",
        "checks": {"model": model, "features": checked}}
    if service.predictor:
        report["model"] = {"name": service.predictor.version.name,
                           "version": service.predictor.version.version}
    return report
