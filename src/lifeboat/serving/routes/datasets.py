"""The datasets this service serves: what a client (or the UI's switcher) picks from."""

from __future__ import annotations

from fastapi import APIRouter

from lifeboat.serving.deps import Services
from lifeboat.serving.schemas import DatasetOut, DatasetsPage

router = APIRouter(tags=["datasets"])


def dataset_path(name: str) -> str:
    """Where a dataset's API and UI page live; the default dataset is also served at `/`."""
    return f"/datasets/{name}"


@router.get("/datasets", response_model=DatasetsPage,
            summary="The served datasets, the default first, each with its serving champion")
def datasets(services: Services) -> DatasetsPage:
    default = next(iter(services))
    return DatasetsPage(items=[
        DatasetOut(name=name, description=service.spec.description,
                   model_name=service.spec.model_name,
                   champion=service.predictor.version.version if service.predictor else None,
                   default=name == default, path=dataset_path(name))
        for name, service in services.items()])
