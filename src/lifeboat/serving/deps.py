"""What route handlers get injected: the service state, and its predictor or a 503."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from lifeboat.serving.predictor import Predictor
from lifeboat.serving.state import ServiceState


async def _service(request: Request) -> ServiceState:
    """Async on purpose: FastAPI runs a sync dependency in the thread pool, a hop that costs
    more than most requests' whole work."""
    return request.app.state.service


Service = Annotated[ServiceState, Depends(_service)]


def serving_predictor(service: ServiceState) -> Predictor:
    """The predictor this request keeps, even if a new champion is swapped in meanwhile."""
    predictor = service.predictor
    if predictor is None:
        raise HTTPException(503, detail=service.model_error or "no model loaded")
    return predictor
