"""Points MLflow at Lifeboat's tracking store: SQLite under LIFEBOAT_HOME unless told otherwise."""

from __future__ import annotations

import os

import mlflow
from mlflow.tracking import MlflowClient

from lifeboat.config import Settings

# MLflow phones home by default; Lifeboat runs offline and says nothing about its users.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def configure_tracking(settings: Settings) -> MlflowClient:
    if settings.mlflow_tracking_uri is None:
        settings.ensure_home()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def experiment_id(client: MlflowClient, settings: Settings, dataset: str) -> str:
    """The dataset's experiment; artifacts live beside the embedded store unless a server is used."""
    name = f"lifeboat-{dataset}"
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None if settings.mlflow_tracking_uri else settings.artifact_root.as_uri()
    return client.create_experiment(name, artifact_location=location)
