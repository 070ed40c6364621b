"""What was predicted, and what really happened: the prediction log and its feedback."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at run
# time, and `Service` is local to the factory.
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from lifeboat.scoring import past_predictions as logged_predictions
from lifeboat.scoring import save_feedback
from lifeboat.serving.admin import Feedback, Read
from lifeboat.serving.deps import DatasetService
from lifeboat.serving.schemas import (
    FeedbackIn,
    FeedbackOut,
    PastPrediction,
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
