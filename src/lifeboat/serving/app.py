"""The FastAPI application: one process serves prediction, history, models, health and the
UI, for every configured dataset (`LIFEBOAT_DATASET` the default, plus `LIFEBOAT_DATASETS`)."""

from __future__ import annotations

import gc
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from lifeboat import __version__
from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database
from lifeboat.errors import DatasetSpecError
from lifeboat.features import OnlineStore, open_online_store
from lifeboat.lifecycle import exit_with_parent
from lifeboat.registry import ChampionHistory, ModelRegistry, TrackingServerUnavailable
from lifeboat.scoring import PredictionLog
from lifeboat.serving.admin import document_open_scopes, warn_open_scopes
from lifeboat.serving.bodies import JsonBodies, validation_error_response
from lifeboat.serving.deps import DatasetService
from lifeboat.serving.docs import add_docs
from lifeboat.serving.http_metrics import HttpMetrics
from lifeboat.serving.routes import (
    dataset_router,
    datasets,
    health,
    scoring_endpoint,
    scoring_route,
)
from lifeboat.serving.routes.datasets import dataset_path
from lifeboat.serving.schemas import DatasetSchemas, dataset_schemas
from lifeboat.serving.state import ServiceState
from lifeboat.serving.ui import add_ui_assets

_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def served_specs(settings: Settings) -> list[DatasetSpec]:
    """`dataset` first (the default), then `datasets`; a dataset named twice is served once,
    and two different specs of one name are an error, as their routes would be one."""
    specs: dict[str, DatasetSpec] = {}
    for source in (settings.dataset, *settings.datasets):
        spec = load_spec(source)
        if not _PATH_SEGMENT.fullmatch(spec.name):
            raise DatasetSpecError(f"dataset name {spec.name!r} cannot be a URL path segment: "
                                   "use letters, digits, '_', '-' and '.'")
        if specs.setdefault(spec.name, spec) != spec:
            raise DatasetSpecError(f"two different dataset specs are named {spec.name!r} "
                                   f"(the second from {source!r})")
    return list(specs.values())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    specs = served_specs(settings)
    schemas = {spec.name: dataset_schemas(spec) for spec in specs}
    default = specs[0]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        exit_with_parent()  # one of uvicorn's workers: not beyond its supervisor
        database = Database(settings.db_url)
        store = open_online_store(settings.online_store_url, settings.online_ttl_seconds)
        prediction_log = PredictionLog(database, settings.ensure_home() / "spool",
                                       capacity=settings.prediction_log_capacity,
                                       journal=settings.journal,
                                       fsync=settings.journal_fsync)
        services = {spec.name: _start(settings, database, spec, store, prediction_log)
                    for spec in specs}
        app.state.settings = settings
        app.state.services = services
        warn_open_scopes(settings)
        _freeze_startup_objects()
        yield
        for service in services.values():
            service.stop()
        prediction_log.close(timeout=settings.prediction_log_drain_seconds)
        store.close()
        database.dispose()  # after the log's last write

    app = FastAPI(
        title="Lifeboat",
        version=__version__,
        summary=_summary(specs),
        lifespan=lifespan,
        max_body_size=settings.max_request_bytes,  # 413, checked as the body streams in
        docs_url=None, redoc_url=None,  # served from installed assets by `add_docs`
    )
    # The default dataset at the unprefixed routes, and every dataset under its own path;
    # the default's second copy is left out of the OpenAPI page, which names it once.
    mounts = [("", default), *((dataset_path(spec.name), spec) for spec in specs)]
    scores = {spec.name: scoring_endpoint(spec, schemas[spec.name], DatasetService(spec.name))
              for spec in specs}
    # Every /predict first, matched before the routers below (see `scoring_route`).
    for prefix, spec in mounts:
        app.router.routes.append(scoring_route(f"{prefix}/predict", scores[spec.name]))
    for prefix, spec in mounts:
        app.include_router(dataset_router(spec, schemas[spec.name], specs, prefix,
                                          scores[spec.name],
                                          include_in_schema=not (prefix and spec is default)))
    app.include_router(datasets.router)
    app.include_router(health.router)
    app.add_exception_handler(StarletteHTTPException, _unknown_dataset(specs))
    app.add_exception_handler(RequestValidationError, validation_error_response)
    app.add_exception_handler(TrackingServerUnavailable, _registry_unavailable)
    app.add_middleware(JsonBodies)  # every JSON body parsed once, and refused whole if unusable
    app.add_middleware(HttpMetrics)  # outside JsonBodies: a request's time includes its parse
    _register_schemas(app, list(schemas.values()), settings)
    add_ui_assets(app)
    add_docs(app)
    return app


def _start(settings: Settings, database: Database, spec: DatasetSpec, store: OnlineStore,
           prediction_log: PredictionLog) -> ServiceState:
    """One dataset's state, its champion loaded and its watchers running. The database,
    the online store and the prediction log are shared: their rows carry the dataset."""
    state = ServiceState(settings, database, spec,
                         ModelRegistry(settings, spec.model_name,
                                       ChampionHistory(database, spec.name)),
                         store, prediction_log)
    state.refresh_models()
    state.start_watchers()
    return state


def _summary(specs: list[DatasetSpec]) -> str:
    default = specs[0]
    summary = f"Predictions for the {default.name} dataset: {default.description}"
    if len(specs) > 1:
        others = ", ".join(dataset_path(spec.name) for spec in specs[1:])
        summary += f" Other datasets: {others} (GET /datasets)."
    return summary


def _unknown_dataset(specs: list[DatasetSpec]) -> Any:
    """A 404 under `/datasets/{name}/` for a name not served says which names are. (And a
    405 lists every method of its path in `Allow`, not only the first route's.)"""
    known = {spec.name for spec in specs}

    async def handler(request: Request, exc: StarletteHTTPException) -> Response:
        parts = request.url.path.split("/")
        if exc.status_code == 404 and len(parts) > 2 and parts[1] == "datasets" \
                and parts[2] and parts[2] not in known:
            return JSONResponse({"detail": f"no dataset {parts[2]!r} is served here; "
                                           f"known: {', '.join(sorted(known))}"}, status_code=404)
        if exc.status_code == 405 and (allowed := _allowed_methods(request)):
            exc.headers = {**(exc.headers or {}), "Allow": allowed}
        return await http_exception_handler(request, exc)

    return handler


async def _registry_unavailable(request: Request, exc: TrackingServerUnavailable) -> Response:
    """A route that reads or changes the registry while its tracking server is down: a 503
    naming the server, which a client may retry, not a 500."""
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path: Starlette names only those of
    the first route that matched the path (`/retrain` has a GET route and a POST route).
    Empty for static files (mounts), whose 405s keep their own headers."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    return ", ".join(method for method in _METHODS if any(
        route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes))


def _freeze_startup_objects() -> None:
    """Moves what start-up allocated (MLflow, scikit-learn, the model: some 400,000 objects)
    out of the garbage collector's sight. A full collection over them pauses every request
    in flight for 150-300 ms (measured); they live as long as the process anyway."""
    gc.collect()
    gc.freeze()


def _register_schemas(app: FastAPI, schemas: list[DatasetSchemas], settings: Settings) -> None:
    """Puts each dataset's record schema in the OpenAPI components, where its /predict
    refers to it (that route reads its body itself, so FastAPI does not add it), and
    documents the scopes left open by this server's settings as needing no key."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = original()
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for dataset in schemas:
                components[dataset.record.__name__] = dataset.record.model_json_schema(
                    ref_template="#/components/schemas/{model}")
            document_open_scopes(document, settings)
        return app.openapi_schema

    app.openapi = openapi
