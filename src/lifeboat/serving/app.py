"""The FastAPI application: one process serves prediction, history, models, health and the UI."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from lifeboat import __version__
from lifeboat.config import Settings
from lifeboat.datasets import load_spec
from lifeboat.db import Database
from lifeboat.features import open_online_store
from lifeboat.registry import ModelRegistry
from lifeboat.serving.prediction_log import PredictionLog
from lifeboat.serving.routes import health, jobs, models, monitoring, records
from lifeboat.serving.routes.predict import predict_router
from lifeboat.serving.schemas import record_model
from lifeboat.serving.state import ServiceState
from lifeboat.serving.ui import add_ui_routes


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    spec = load_spec(settings.dataset)
    record = record_model(spec)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.db_url)
        store = open_online_store(settings.online_store_url, settings.online_ttl_seconds)
        prediction_log = PredictionLog(database, settings.ensure_home() / "spool",
                                       capacity=settings.prediction_log_capacity)
        state = ServiceState(settings, database, spec, ModelRegistry(settings, spec.model_name),
                             store, prediction_log)
        state.refresh_models()
        state.watch_champion()
        state.watch_monitoring()
        app.state.service = state
        _freeze_startup_objects()
        yield
        state.stop()
        prediction_log.close(timeout=settings.prediction_log_drain_seconds)
        store.close()
        database.dispose()  # after the log's last write

    app = FastAPI(
        title="Lifeboat",
        version=__version__,
        summary=f"Predictions for the {spec.name} dataset: {spec.description}",
        lifespan=lifespan,
        max_body_size=settings.max_request_bytes,  # 413, checked as the body streams in
    )
    app.include_router(predict_router(spec, record))
    for router in (records.router, models.router, monitoring.router, jobs.router,
                   health.router):
        app.include_router(router)
    _register_schema(app, record)
    add_ui_routes(app)
    return app


def _freeze_startup_objects() -> None:
    """Moves what start-up allocated (MLflow, scikit-learn, the model: some 400,000 objects)
    out of the garbage collector's sight. A full collection over them pauses every request
    in flight for 150-300 ms (measured); they live as long as the process anyway."""
    gc.collect()
    gc.freeze()


def _register_schema(app: FastAPI, record: type[BaseModel]) -> None:
    """Puts the generated record schema in the OpenAPI components, where /predict refers to it."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {}).setdefault("schemas", {})[record.__name__] = (
                record.model_json_schema(ref_template="#/components/schemas/{model}")
            )
        return app.openapi_schema

    app.openapi = openapi
