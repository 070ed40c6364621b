"""What was predicted, and what really happened: the prediction log and its feedback."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at run
# time, and `Service` is local to the factory.
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from lifeboat.datasets import DatasetSpec
from lifeboat.ingest import csv_bytes
from lifeboat.scoring import (
    PredictionFilter,
    Predictor,
    contributions,
    exported_predictions,
    logged_prediction,
    save_feedback,
    vector_contributions,
)
from lifeboat.scoring import past_predictions as logged_predictions
from lifeboat.serving.admin import Feedback, Read
from lifeboat.serving.deps import DatasetService
from lifeboat.serving.schemas import (
    FeedbackIn,
    FeedbackOut,
    ModelRef,
    PastPrediction,
    PastPredictionDetail,
    PastPredictionsPage,
    Source,
)

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def _rfc3339(value: Any) -> Any:
    """Only what the OpenAPI document promises to take (`format: date-time`, RFC 3339): a
    date and time with its zone. Pydantic alone also reads `0.5` as seconds since 1970 and
    takes a time without a zone, which would be read as the server's UTC unannounced."""
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("expected a date and time with its zone (RFC 3339), "
                         "e.g. 2026-01-31T12:00:00Z")
    return value


def _in_utc(moment: datetime) -> datetime:
    """The filter as the log's times are kept; 0001-01-01T00:00:00+01:00 has no UTC time."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once in UTC") from None


Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_in_utc)]


def records_router(dataset: DatasetService) -> APIRouter:
    Service = dataset.annotated()
    router = APIRouter(tags=["predictions"])

    @router.get("/past-predictions", response_model=PastPredictionsPage, dependencies=[Read],
                summary="Logged predictions, newest first")
    def past_predictions(
        service: Service,
        source: Source | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> PastPredictionsPage:
        service.prediction_log.flush(timeout=1.0)  # a request sees the predictions it just made
        total, rows = logged_predictions(
            service.database, dataset=service.spec.name, source=source, since=since,
            until=until, limit=limit, offset=offset,
        )
        items = [PastPrediction.model_validate(row) for row in rows]
        return PastPredictionsPage(total=total, limit=limit, offset=offset, items=items)

    @router.get("/past-predictions.csv", dependencies=[Read],
                response_class=StreamingResponse,
                responses={200: {"content": {"text/csv": {}},
                                 "description": "One row per prediction, newest first"}},
                summary="Every logged prediction the filters hold, as a CSV download")
    def past_predictions_csv(
        service: Service,
        source: Source | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
    ) -> StreamingResponse:
        service.prediction_log.flush(timeout=1.0)
        where = PredictionFilter(service.spec.name, source, since, until)
        chunks = exported_predictions(service.database, where)
        return StreamingResponse(_csv_lines(service.spec, chunks), media_type="text/csv",
                                 headers={"Content-Disposition": "attachment; filename="
                                          f'"{service.spec.name}-predictions.csv"'})

    @router.get("/past-predictions/{prediction_id}", response_model=PastPredictionDetail,
                dependencies=[Read],
                responses={404: {"description": "No logged prediction of this dataset has "
                                                "this id"}},
                summary="One logged prediction: its input, vector, outcome and explanation")
    def past_prediction(
        service: Service,
        prediction_id: Annotated[str, Path(min_length=1, max_length=36, pattern="^[0-9A-Za-z-]+$",
                                           description="The prediction's id (a UUID).")],
    ) -> PastPredictionDetail:
        service.prediction_log.flush(timeout=1.0)
        row = logged_prediction(service.database, service.spec.name, prediction_id)
        if row is None:
            raise HTTPException(404, detail=f"no logged {service.spec.name} prediction has id "
                                            f"{prediction_id!r}")
        return _detail(row, service.predictor, service.spec)

    @router.post("/feedback", response_model=FeedbackOut, dependencies=[Feedback],
                 responses={404: {"description": "No logged prediction of this dataset has "
                                                 "this id"}},
                 summary="The true outcome of a logged prediction (for live accuracy)")
    def feedback(given: FeedbackIn, service: Service) -> FeedbackOut:
        service.prediction_log.flush(timeout=1.0)  # feedback may follow its prediction at once
        predicted = save_feedback(service.database, service.spec.name, given.id,
                                          given.actual)
        if predicted is None:
            raise HTTPException(404, detail=f"no logged {service.spec.name} prediction has id "
                                            f"{given.id!r}")
        return FeedbackOut(id=given.id, actual=given.actual, prediction=predicted,
                           correct=predicted == given.actual)

    return router


_EXPORTED = ["id", "created_at", "source", "entity_id", "model_name", "model_version",
             "prediction", "label", "probability", "actual", "outcome_source", "latency_ms"]


def _csv_lines(spec: DatasetSpec, chunks: Iterator[list[dict[str, Any]]]) -> Iterator[bytes]:
    """The export, a chunk of rows at a time: the fixed columns, then one per input field
    of the spec (a prediction by id has only its entity_id), then the scored vector as
    JSON. Cells a spreadsheet would run as formulas are defused (`csv_bytes`)."""
    inputs = {name: f"input_{name}" if name in _EXPORTED else name
              for name in spec.input_columns}
    columns = [*_EXPORTED, *inputs.values(), "features"]
    yield csv_bytes(pd.DataFrame(columns=columns))
    for rows in chunks:
        frame = pd.DataFrame([{
            **{name: row[name] for name in _EXPORTED},
            "created_at": row["created_at"].isoformat(),  # as the JSON routes write it
            **{column: row["input"].get(name) for name, column in inputs.items()},
            "features": None if row["features"] is None else json.dumps(row["features"]),
        } for row in rows], columns=columns)
        yield csv_bytes(frame).split(b"\n", 1)[1]


def _detail(row: dict[str, Any], predictor: Predictor | None,
            spec: DatasetSpec) -> PastPredictionDetail:
    """The prediction with an explanation: none is logged, so the model serving now explains
    the fields given, as the Predict tab does; a prediction by entity id, which has none,
    by the vector it was scored on, when the serving model's features are the ones logged."""
    logged = PastPrediction.model_validate(row).model_dump()
    if predictor is None:
        return PastPredictionDetail(**logged, explanation=None, explained_by=None,
                                    explained_from=None,
                                    explanation_note="no model is serving to explain it")
    by = ModelRef(name=predictor.version.name, version=predictor.version.version)
    features, given = row["features"], row["input"]
    if given and set(given) <= set(spec.input_fields):
        return PastPredictionDetail(**logged, explanation=contributions(predictor, given),
                                    explained_by=by, explained_from="input")
    if features is not None and set(features) == set(predictor.view.columns):
        return PastPredictionDetail(**logged, explanation=vector_contributions(predictor, features),
                                    explained_by=by, explained_from="features")
    return PastPredictionDetail(
        **logged, explanation=None, explained_by=None, explained_from=None,
        explanation_note="the serving model's features differ from the vector logged, and "
                         "the input holds no fields to explain")
