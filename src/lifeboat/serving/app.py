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
from lifeboat.registry import ModelRegistry
from lifeboat.serving import history
from lifeboat.serving.schemas import (
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
        state = ServiceState(settings, database, spec, ModelRegistry(settings, spec.model_name))
        state.load_champion()
        app.state.service = state
        yield
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
    request_schema = {
        "oneOf": [
            {"$ref": f"#/components/schemas/{record.__name__}"},
            {"type": "object", "required": ["records"], "properties": {
                "records": {"type": "array", "items": {"$ref": f"#/components/schemas/{record.__name__}"}},
                "source": {"type": "string", "enum": list(Source.__args__)},
            }},
        ]
    }

    @app.post(
        "/predict",
        response_model=PredictResponse,
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": request_schema}}}},
        summary="Score one raw record, or {\"records\": [...]}",
    )
    def predict(service: Service, payload: Any = Body(...)) -> PredictResponse:  # noqa: B008
        predictor = service.predictor
        if predictor is None:
            raise HTTPException(503, detail=service.model_error or "no model loaded")
        records, source = _parse_payload(payload, one, many, sources)
        predictions = predictor.predict(records, source)
        history.save(service.database, predictions)
        return PredictResponse(
            model=ModelRef(name=predictor.version.name, version=predictor.version.version),
            predictions=[PredictionOut(id=p.id, prediction=p.prediction, label=p.label,
                                       probability=p.probability) for p in predictions],
        )

    _register_schema(app, record)


def _parse_payload(payload: Any, one: TypeAdapter, many: TypeAdapter,
                   sources: TypeAdapter) -> tuple[list[dict[str, Any]], str]:
    """A single record or {"records": [...]}; each bad field is named in the 422."""
    if not isinstance(payload, dict):
        raise RequestValidationError([{"type": "dict_type", "loc": ("body",), "input": payload,
                                       "msg": "Input should be a JSON object"}])
    body = dict(payload)
    source = body.pop("source", "api")
    batch = "records" in body
    try:
        source = sources.validate_python(source)
        if batch:
            if isinstance(body["records"], list) and len(body["records"]) > MAX_RECORDS:
                raise HTTPException(413, detail=f"at most {MAX_RECORDS} records per request")
            parsed = many.validate_python(body["records"])
        else:
            parsed = [one.validate_python(body)]
    except ValidationError as exc:
        prefix = ("body", "records") if batch else ("body",)
        raise RequestValidationError(
            [{**error, "loc": (*prefix, *error["loc"])} for error in exc.errors()]
        ) from None
    return [item.model_dump() for item in parsed], source


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
        checks = {
            "model": "ok" if service.predictor else (service.model_error or "not loaded"),
            "database": "ok" if service.database.ping() else "unreachable",
        }
        is_ready = all(value == "ok" for value in checks.values())
        body = {"status": "ready" if is_ready else "not ready", "checks": checks}
        if service.predictor:
            body["model"] = {"name": service.predictor.version.name,
                             "version": service.predictor.version.version}
        return JSONResponse(body, status_code=200 if is_ready else 503)
