"""The FastAPI application: prediction, prediction history, model info, health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from lifeboat import __version__
from lifeboat.config import Settings
from lifeboat.datasets import load_spec
from lifeboat.db import Database
from lifeboat.features import OnlineStoreUnavailable, open_online_store
from lifeboat.registry import ModelRegistry
from lifeboat.serving import history
from lifeboat.serving.predictor import Predictor
from lifeboat.serving.schemas import (
    EntityError,
    ModelInfo,
    ModelRef,
    PastPrediction,
    PastPredictionsPage,
    PredictionOut,
    PredictResponse,
    Source,
    record_model,
)
from lifeboat.serving.state import ServiceState

MAX_RECORDS = 10_000


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    spec = load_spec(settings.dataset)
    record = record_model(spec)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.db_url)
        store = open_online_store(settings.online_store_url, settings.online_ttl_seconds)
        state = ServiceState(settings, database, spec, ModelRegistry(settings, spec.model_name),
                             store)
        state.load_champion()
        app.state.service = state
        yield
        store.close()
        database.dispose()

    app = FastAPI(
        title="Lifeboat",
        version=__version__,
        summary=f"Predictions for the {spec.name} dataset: {spec.description}",
        lifespan=lifespan,
    )
    _add_prediction_routes(app, record)
    _add_info_routes(app)
    return app


def _service(request: Request) -> ServiceState:
    return request.app.state.service


Service = Annotated[ServiceState, Depends(_service)]


def _add_prediction_routes(app: FastAPI, record: type[BaseModel]) -> None:
    one = TypeAdapter(record)
    many = TypeAdapter(Annotated[list[record], Field(min_length=1)])
    sources = TypeAdapter(Source)
    entity_ids = TypeAdapter(Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                                       Field(min_length=1, max_length=MAX_RECORDS)])
    source_schema = {"type": "string", "enum": list(Source.__args__)}
    request_schema = {
        "oneOf": [
            {"$ref": f"#/components/schemas/{record.__name__}"},
            {"type": "object", "required": ["records"], "properties": {
                "records": {"type": "array", "items": {"$ref": f"#/components/schemas/{record.__name__}"}},
                "source": source_schema,
            }},
            {"type": "object", "required": ["entity_ids"], "properties": {
                "entity_ids": {"type": "array", "items": {"type": "string"}},
                "source": source_schema,
            }},
        ]
    }

    @app.post(
        "/predict",
        response_model=PredictResponse,
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": request_schema}}}},
        summary="Score one raw record, {\"records\": [...]}, or {\"entity_ids\": [...]}",
    )
    def predict(service: Service, payload: Any = Body(...)) -> PredictResponse:  # noqa: B008
        predictor = service.predictor
        if predictor is None:
            raise HTTPException(503, detail=service.model_error or "no model loaded")
        body, source = _body_and_source(payload, sources)
        if "entity_ids" in body:
            ids = _validated(entity_ids, body["entity_ids"], ("body", "entity_ids"))
            predictions, errors = _score_entities(service, predictor, ids, source)
        else:
            predictions, errors = predictor.predict(_parse_records(body, one, many), source), []
        history.save(service.database, predictions)
        return PredictResponse(
            model=ModelRef(name=predictor.version.name, version=predictor.version.version),
            predictions=[PredictionOut(id=p.id, entity_id=p.input.get("entity_id"),
                                       prediction=p.prediction, label=p.label,
                                       probability=p.probability) for p in predictions],
            errors=errors,
        )

    _register_schema(app, record)


def _score_entities(service: ServiceState, predictor: Predictor, ids: list[str],
                    source: str) -> tuple[list, list[EntityError]]:
    try:
        scores = predictor.predict_entities(service.store, ids, source)
    except OnlineStoreUnavailable as exc:
        raise HTTPException(503, detail=str(exc)) from None
    missing = f"no features {predictor.view.label} for this id in the online store"
    return scores.predictions, [EntityError(entity_id=i, error=missing) for i in scores.unknown]


def _body_and_source(payload: Any, sources: TypeAdapter) -> tuple[dict[str, Any], str]:
    if not isinstance(payload, dict):
        raise RequestValidationError([{"type": "dict_type", "loc": ("body",), "input": payload,
                                       "msg": "Input should be a JSON object"}])
    body = dict(payload)
    return body, _validated(sources, body.pop("source", "api"), ("body", "source"))


def _parse_records(body: dict[str, Any], one: TypeAdapter, many: TypeAdapter) -> list[dict[str, Any]]:
    """A single record or {"records": [...]}; each bad field is named in the 422."""
    if "records" not in body:
        return [_validated(one, body, ("body",)).model_dump()]
    if isinstance(body["records"], list) and len(body["records"]) > MAX_RECORDS:
        raise HTTPException(413, detail=f"at most {MAX_RECORDS} records per request")
    return [item.model_dump() for item in _validated(many, body["records"], ("body", "records"))]


def _validated(adapter: TypeAdapter, value: Any, location: tuple[str, ...]) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": (*location, *error["loc"])} for error in exc.errors()]
        ) from None


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


def _add_info_routes(app: FastAPI) -> None:
    @app.get("/past-predictions", response_model=PastPredictionsPage)
    def past_predictions(
        service: Service,
        source: Source | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> PastPredictionsPage:
        total, rows = history.past_predictions(
            service.database, dataset=service.spec.name, source=source, since=since,
            until=until, limit=limit, offset=offset,
        )
        items = [PastPrediction.model_validate(row) for row in rows]
        return PastPredictionsPage(total=total, limit=limit, offset=offset, items=items)

    @app.get("/model", response_model=ModelInfo)
    def model(service: Service) -> ModelInfo:
        if service.predictor is None:
            raise HTTPException(503, detail=service.model_error or "no model loaded")
        version = service.predictor.version
        return ModelInfo(dataset=service.spec.name, name=version.name, version=version.version,
                         run_id=version.run_id, aliases=version.aliases, metrics=version.metrics)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready(service: Service) -> JSONResponse:
        features, features_ready = service.feature_check()
        checks = {
            "model": "ok" if service.predictor else (service.model_error or "not loaded"),
            "database": "ok" if service.database.ping() else "unreachable",
            "features": features,
        }
        is_ready = features_ready and checks["model"] == checks["database"] == "ok"
        body = {"status": "ready" if is_ready else "not ready", "checks": checks}
        if service.predictor:
            body["model"] = {"name": service.predictor.version.name,
                             "version": service.predictor.version.version}
        return JSONResponse(body, status_code=200 if is_ready else 503)
