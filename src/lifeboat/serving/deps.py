"""What route handlers get injected: a dataset's service state, and its predictor or a 503.

The process holds one `ServiceState` per served dataset, in `app.state.services` (the
default dataset first). A dataset's routes are built for it by `routes.dataset_router`,
which hands each route module that dataset's `DatasetService`: its handlers take the state
through `DatasetService.annotated()`, the process-wide ones (`/ready`, ...) take `Services`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from lifeboat.scoring import Predictor
from lifeboat.serving.state import ServiceState


class DatasetService:
    """Finds one dataset's state for a request. The states are made at start-up (in the
    lifespan), after the routes: so routes hold the dataset's name, not its state."""

    def __init__(self, name: str) -> None:
        self.name = name

    def of(self, request: Request) -> ServiceState:
        return request.app.state.services[self.name]

    async def __call__(self, request: Request) -> ServiceState:
        """Async on purpose: FastAPI runs a sync dependency in the thread pool, a hop that
        costs more than most requests' whole work."""
        return self.of(request)

    def annotated(self) -> Any:
        """The parameter type that injects this dataset's state into a route handler."""
        return Annotated[ServiceState, Depends(self)]


async def _services(request: Request) -> dict[str, ServiceState]:
    return request.app.state.services


Services = Annotated[dict[str, ServiceState], Depends(_services)]


def serving_predictor(service: ServiceState) -> Predictor:
    """The predictor this request keeps, even if a new champion is swapped in meanwhile."""
    predictor = service.predictor
    if predictor is None:
        raise HTTPException(503, detail=service.model_error or "no model loaded")
    return predictor
