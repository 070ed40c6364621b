"""Scoring routes: `/predict` (one record, records, or entity ids) and `/predict/csv`."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at run
# time, and `Service` is local to the factory.
import io
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any
from urllib.parse import quote

import pandas as pd
from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictBool, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from lifeboat.datasets import DatasetSpec
from lifeboat.features import OnlineStoreUnavailable
from lifeboat.ingest import csv_bytes, read_chunks
from lifeboat.scoring import (
    MAX_ENTITY_ID,
    MAX_EXPLAINED,
    Predictor,
    RowProblem,
    checked_records,
    contributions,
    vector_contributions,
)
from lifeboat.serving.admin import Scope, authorize_request
from lifeboat.serving.bodies import body_json
from lifeboat.serving.deps import DatasetService, serving_predictor
from lifeboat.serving.schemas import (
    ENTITY_ID_SCHEMA,
    DatasetSchemas,
    EntityError,
    EntityId,
    ModelRef,
    RowProblemOut,
    Source,
)
from lifeboat.serving.state import ServiceState
from lifeboat.validation import FileRejected, RowIssue

MAX_RECORDS = 10_000
_INLINE_RECORDS = 32  # scored without leaving the event loop
_CSV = "text/csv"
_UNSPLIT = "the line does not split into the header's columns"


Endpoint = Callable[[Request], Awaitable[Response]]


def predict_router(spec: DatasetSpec, schemas: DatasetSchemas, dataset: DatasetService,
                   score: Endpoint) -> APIRouter:
    """`/predict/csv`, and `/predict` documented: `score` (from `scoring_endpoint`) serves
    it from the app's `scoring_route`, matched first."""
    Service = dataset.annotated()
    record = schemas.record
    router = APIRouter(tags=["predict"])
    router.add_api_route(
        "/predict",
        score,
        methods=["POST"],
        response_model=schemas.response,
        response_model_exclude_none=True,
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": _request_schema(record)}}}},
        summary='Score one raw record, {"records": [...]}, or {"entity_ids": [...]}',
    )

    @router.post(
        "/predict/csv",
        response_model=schemas.response,
        response_model_exclude_none=True,
        responses={200: {"content": {_CSV: {}}}},
        openapi_extra={"requestBody": {"content": {"multipart/form-data": {
            "encoding": {"file": {"contentType": _CSV}}}}}},
        summary="Score every row of an uploaded CSV (JSON back, or CSV with Accept: text/csv); "
                "bad values are listed with their row, column and reason",
    )
    def predict_csv(request: Request, service: Service,
                    file: Annotated[UploadFile, File(description="CSV with a header row")],
                    source: Annotated[Source, Query()] = "api") -> Any:
        """Scored as `lifeboat predict` scores a file: every row, a bad value left out and
        listed in `issues` with its row, column and reason, as is each line not scored."""
        predictor = serving_predictor(service)
        rows, problems = _uploaded_rows(spec, file)
        records, bad_values = checked_records(spec, rows)
        problems = sorted([*problems, *bad_values], key=lambda problem: problem.row or 0)
        keys = [_entity_key(key) for key in rows[spec.entity.key].tolist()]
        predictions = predictor.predict(records, source, keys)
        if _CSV in request.headers.get("accept", ""):
            response = _csv_response(spec, rows, predictions, file.filename, problems)
            service.record(predictions)  # once the answer is built: none is logged unanswered
            return response
        return _response(service, schemas, predictor, predictions, [],
                         uploaded=(rows["row"].tolist(), problems))

    return router


def scoring_route(path: str, score: Endpoint) -> Route:
    """`POST {path}` as a plain Starlette route, for the app to match before its included
    routers: FastAPI resolves nested routers on every request, and with its request
    handling that was a sixth of a one-record request's time (measured: 19% more
    requests/s at 16 clients). The router's APIRoute of the same endpoint is what the
    OpenAPI page documents."""
    return Route(path, score, methods=["POST"])


def scoring_endpoint(spec: DatasetSpec, schemas: DatasetSchemas,
                     dataset: DatasetService) -> Endpoint:
    record = schemas.record
    one, many = TypeAdapter(record), _many(record)
    keys = _EntityKeys(spec)
    flags = _Flags(TypeAdapter(Source), TypeAdapter(StrictBool))  # `"explain": 0` is a 422
    entity_ids = TypeAdapter(Annotated[list[EntityId], Field(min_length=1, max_length=MAX_RECORDS)])

    async def predict(request: Request) -> Response:
        """Reads its JSON and writes its answer itself: FastAPI's body parameter and
        response_model handling cost more than the scoring (~3 of every 4 µs of a one-record
        request, measured). The route's schemas still document both.

        A few records are scored on the event loop: that takes microseconds and logging
        is queued, so a hop to the thread pool would cost more than the work. Store lookups
        (network), big batches and explanations (a model call per field) go to the pool."""
        authorize_request(request, Scope.PREDICT)  # FastAPI's dependencies do not run here
        service = dataset.of(request)
        predictor = serving_predictor(service)
        body, source, explain = flags.split(await body_json(request))
        if "entity_ids" in body:
            ids = _validated(entity_ids, body["entity_ids"], ("body", "entity_ids"))
            _explainable(explain, ids, "entity ids")
            predictions, errors, explained = await run_in_threadpool(
                _score_entities, service, predictor, ids, source, explain)
            return _response(service, schemas, predictor, predictions, errors, explained)
        given = body["records"] if "records" in body else [body]
        records = _parse_records(body, one, many)
        _explainable(explain, records, "records")
        carried = keys.of(given)
        if not explain and len(records) <= _INLINE_RECORDS:
            return _response(service, schemas, predictor,
                             predictor.predict(records, source, carried), [])
        predictions, explained = await run_in_threadpool(_score_records, predictor, records,
                                                         carried, source, explain)
        return _response(service, schemas, predictor, predictions, [], explained)

    return predict


def _many(record: type[BaseModel]) -> TypeAdapter:
    return TypeAdapter(Annotated[list[record], Field(min_length=1)])


def _explainable(explain: bool, items: list, what: str) -> None:
    """Each explained item costs a model call per field: a request explains a bounded few."""
    if explain and len(items) > MAX_EXPLAINED:
        raise HTTPException(413, detail=f"at most {MAX_EXPLAINED} {what} per explained request")


class _EntityKeys:
    """The entity key a raw record carries, in any accepted spelling of the spec's key: the
    record model drops it with every other field that is not an input."""

    def __init__(self, spec: DatasetSpec) -> None:
        key = spec.entity.key
        self.spellings = frozenset(name.lower() for name in (key, *spec.columns[key].aliases))

    def of(self, records: list[Any]) -> list[str | None]:
        return [self._key(record) for record in records]

    def _key(self, record: Any) -> str | None:
        for name, value in record.items():
            if name.strip().lower() in self.spellings:
                return _entity_key(value)
        return None


def _entity_key(value: Any) -> str | None:
    """A given key as an entity id (trimmed text, as ids are stored), or None when it cannot
    be one: missing, empty, longer than an id, or not a string or integer."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= MAX_ENTITY_ID else None


class _Flags:
    """Pulls the request-level fields (`source`, `explain`) off a /predict body."""

    def __init__(self, sources: TypeAdapter, booleans: TypeAdapter) -> None:
        self.sources, self.booleans = sources, booleans

    def split(self, payload: Any) -> tuple[dict[str, Any], str, bool]:
        if not isinstance(payload, dict):
            raise RequestValidationError([{"type": "dict_type", "loc": ("body",), "input": payload,
                                           "msg": "Input should be a JSON object"}])
        body = dict(payload)
        source = _validated(self.sources, body.pop("source", "api"), ("body", "source"))
        explain = _validated(self.booleans, body.pop("explain", False), ("body", "explain"))
        return body, source, explain


def _response(service: ServiceState, schemas: DatasetSchemas, predictor: Predictor,
              predictions: list, errors: list, explained: list | None = None,
              uploaded: tuple[list[int], list[RowProblem]] | None = None) -> Response:
    """The JSON answer; `uploaded` is a file's: each prediction's row, and its problems."""
    named = schemas.probability_field
    rows, problems = uploaded or (None, None)
    answer = schemas.response(
        model=ModelRef(name=predictor.version.name, version=predictor.version.version),
        predictions=[schemas.prediction(id=p.id, entity_id=p.input.get("entity_id"),
                                        prediction=p.prediction, label=p.label,
                                        probability=p.probability,
                                        outliers=list(p.outliers) or None,
                                        contributions=explained[i] if explained else None,
                                        row=rows[i] if rows else None,
                                        **({named: p.probability} if named else {}))
                     for i, p in enumerate(predictions)],
        errors=errors,
        issues=None if problems is None else [RowProblemOut.model_validate(problem)
                                              for problem in problems],
    )
    response = Response(answer.model_dump_json(exclude_none=True), media_type="application/json")
    service.record(predictions)  # once the answer is built: none is logged unanswered
    return response


def _score_records(predictor: Predictor, records: list[dict[str, Any]],
                   keys: list[str | None], source: str, explain: bool) -> tuple[list, list | None]:
    predictions = predictor.predict(records, source, keys)
    return predictions, [contributions(predictor, r) for r in records] if explain else None


def _score_entities(service: ServiceState, predictor: Predictor, ids: list[str], source: str,
                    explain: bool) -> tuple[list, list[EntityError], list | None]:
    try:
        scores = predictor.predict_entities(service.store, ids, source)
        emptied = bool(scores.unknown) and service.store.columns(predictor.view.key) is None
    except OnlineStoreUnavailable as exc:
        raise HTTPException(503, detail=str(exc)) from None
    if emptied:  # restarted or flushed: the service is refilling it (see ServiceState)
        retry = math.ceil(service.settings.online_check_seconds)
        raise HTTPException(503, headers={"Retry-After": str(retry)}, detail=(
            f"the online store holds no features {predictor.view.label} at the moment: it is "
            f"being refilled, retry in {retry} s"))
    missing = f"no features {predictor.view.label} for this id in the online store"
    errors = [EntityError(entity_id=i, error=missing) for i in scores.unknown]
    explained = ([vector_contributions(predictor, p.features) for p in scores.predictions]
                 if explain else None)
    return scores.predictions, errors, explained


def _parse_records(body: dict[str, Any], one: TypeAdapter, many: TypeAdapter) -> list[dict[str, Any]]:
    """A single record or {"records": [...]}; each bad field is named in the 422."""
    if "records" not in body:
        return [_validated(one, body, ("body",)).model_dump()]
    if isinstance(body["records"], list) and len(body["records"]) > MAX_RECORDS:
        raise HTTPException(413, detail=f"at most {MAX_RECORDS} records per request")
    return [item.model_dump() for item in _validated(many, body["records"], ("body", "records"))]


def _validated(adapter: TypeAdapter, value: Any, location: tuple[Any, ...]) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": (*location, *error["loc"])} for error in exc.errors()]
        ) from None


def _uploaded_rows(spec: DatasetSpec,
                   upload: UploadFile) -> tuple[pd.DataFrame, list[RowProblem]]:
    """The upload read as ingestion reads files (any delimiter, encoding, column spelling),
    and its lines that cannot be split into the header's columns; a file with no row to
    score is a 422 (the reader refuses it)."""
    content = upload.file.read()
    try:
        chunks = read_chunks(lambda: io.BytesIO(content), spec.scoring_source,
                             chunk_rows=MAX_RECORDS + 1)
        rows = next(iter(chunks.chunks))
    except FileRejected as rejected:
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "file"),
                                       "msg": f"not a usable CSV file: {rejected.reason}",
                                       "input": upload.filename}]) from None
    if len(rows) > MAX_RECORDS:
        raise HTTPException(413, detail=f"at most {MAX_RECORDS} rows per upload")
    unsplit = [RowProblem(line.row, None, RowIssue.MALFORMED_ROW, _UNSPLIT, line.text)
               for line in chunks.malformed]
    return rows.reset_index(drop=True), unsplit


def _csv_response(spec: DatasetSpec, rows: pd.DataFrame, predictions: list,
                  filename: str | None, problems: Sequence[RowProblem] = ()) -> Response:
    """The rows as given with their predictions, as `lifeboat predict` writes its output: the
    row number, the values, `issues` (`age: wrong_type; sex: not_allowed`), the prediction.
    A line not scored has a row of its own, with its issue and no prediction."""
    numbered = "row" in rows
    given = [name for name in (spec.entity.key, *spec.input_columns) if rows[name].notna().any()]
    probabilities = [p.probability for p in predictions]
    named = spec.target.probability_field
    table = rows[["row", *given] if numbered else given].assign(
        **({"issues": _issue_cells(rows, problems)} if numbered else {}),
        prediction_id=[p.id for p in predictions],
        prediction=[p.prediction for p in predictions],
        label=[p.label for p in predictions],
        probability=probabilities,
        **({named: probabilities} if named else {}),
    )
    unsplit = pd.DataFrame({"row": [p.row for p in problems if p.column is None],
                            "issues": [p.issue for p in problems if p.column is None]})
    if numbered and not unsplit.empty:  # whole numbers stay whole beside the empty cells
        table = pd.concat([table.astype({"row": "Int64", "prediction": "Int64"}), unsplit])
        table = table.sort_values("row", kind="stable")
    return Response(csv_bytes(table), media_type=_CSV, headers={
        "Content-Disposition": _attachment(f"{_stem(filename)}.predictions.csv")})


def _issue_cells(rows: pd.DataFrame, problems: Sequence[RowProblem]) -> list[str | None]:
    """Each row's problems in one cell, as `lifeboat predict` writes its `issues` column."""
    cells: dict[int, list[str]] = {}
    for problem in problems:
        if problem.column is not None:
            cells.setdefault(problem.row, []).append(f"{problem.column}: {problem.issue}")
    return ["; ".join(cells[row]) if row in cells else None for row in rows["row"].tolist()]


def _stem(filename: str | None) -> str:
    """The upload's name without folders (either slash) or its last suffix."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] or "upload"


def _attachment(filename: str) -> str:
    """Content-Disposition for any file name (RFC 6266): `filename*` carries it as UTF-8
    (RFC 5987), `filename` an ASCII stand-in for clients that predate it. A header is
    Latin-1 and one line, so the name cannot go in as it is."""
    fallback = re.sub(r"[^A-Za-z0-9._ ()-]", "_", filename)
    encoded = quote(filename, safe="", errors="replace")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _request_schema(record: type[BaseModel]) -> dict[str, Any]:
    source = {"type": "string", "enum": list(Source.__args__)}
    reference = {"$ref": f"#/components/schemas/{record.__name__}"}
    return {"oneOf": [
        reference,
        {"type": "object", "required": ["records"], "properties": {
            "records": {"type": "array", "items": reference, "minItems": 1}, "source": source,
            "explain": {"type": "boolean"}}},
        {"type": "object", "required": ["entity_ids"], "properties": {
            "entity_ids": {"type": "array", "items": ENTITY_ID_SCHEMA, "minItems": 1},
            "source": source,
            "explain": {"type": "boolean"}}},
    ]}
