"""The HTTP routes, one module per concern. A dataset's whole API (and its UI page) comes
from one factory, `dataset_router`, built once per dataset at `/datasets/{name}` and once
more without a prefix for the default dataset; `/health`, `/ready`, `/metrics` and
`/datasets` are the process's, one each."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from lifeboat.datasets import DatasetSpec
from lifeboat.serving.admin import Predict, Read
from lifeboat.serving.deps import DatasetService
from lifeboat.serving.routes.jobs import jobs_router
from lifeboat.serving.routes.models import models_router
from lifeboat.serving.routes.monitoring import monitoring_router
from lifeboat.serving.routes.predict import (
    Endpoint,
    predict_router,
    scoring_endpoint,
    scoring_route,
)
from lifeboat.serving.routes.records import records_router
from lifeboat.serving.schemas import DatasetSchemas
from lifeboat.serving.ui import page_router

__all__ = ["dataset_router", "scoring_endpoint", "scoring_route"]


class ErrorOut(BaseModel):
    """What every error but a 422 answers: why, in words."""

    detail: str


class FieldError(BaseModel):
    """One reason for a 422: where (`["body", "records", 0, "fare"]`), what and why."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorsOut(BaseModel):
    detail: list[FieldError]


# What any dataset route may answer besides its own success, documented once for all of them
# (a route adds what is its own, e.g. a 409): clients and API fuzzers read the document.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body could not be read as its content type "
                                            "says"},
    401: {"model": ErrorOut, "description": "A key of the route's scope is needed: none, or a "
                                            "wrong one, was given"},
    403: {"model": ErrorOut, "description": "The route is shut: the server has no key for its "
                                            "scope (admin)"},
    404: {"model": ErrorOut, "description": "No such dataset is served, or no such item "
                                            "(version, prediction, drift report) exists"},
    # No body schema: a body over LIFEBOAT_MAX_REQUEST_BYTES is refused in plain text.
    413: {"description": "The body, or the records, rows or explanations it asks for, are "
                         "more than the service takes"},
    422: {"model": ValidationErrorsOut, "description": "The request does not validate: each "
                                                       "error names its field"},
    503: {"model": ErrorOut, "description": "No model is loaded, or a dependency (the online "
                                            "store) is unavailable"},
}


def dataset_router(spec: DatasetSpec, schemas: DatasetSchemas, specs: list[DatasetSpec],
                   prefix: str, score: Endpoint, include_in_schema: bool = True) -> APIRouter:
    """Every per-dataset route of `spec` under `prefix`, each finding the dataset's state
    by name per request. `specs` are all served datasets, for the page's switcher; `score`
    is the dataset's `/predict` endpoint, which the app also serves ahead of the routers.
    Each route needs a key of its scope (`serving.admin`); the page does not."""
    dataset = DatasetService(spec.name)
    router = APIRouter(prefix=prefix, include_in_schema=include_in_schema, responses=ERRORS)
    router.include_router(predict_router(spec, schemas, dataset, score), dependencies=[Predict])
    router.include_router(records_router(dataset))  # its routes are of two scopes
    router.include_router(models_router(dataset))  # ditto
    for routes in (monitoring_router, jobs_router):
        router.include_router(routes(dataset), dependencies=[Read])
    router.include_router(page_router(spec, specs, prefix))
    return router
