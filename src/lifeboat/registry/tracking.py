"""Points MLflow at Lifeboat's tracking store: SQLite under LIFEBOAT_HOME unless told otherwise.

MLflow is imported when a registry is first opened, not with this package: its own import
loads its AI gateway and with it FastAPI (0.1 s and more), which scoring, the CLI's help
and anything else that merely imports the registry's names should not pay for.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from lifeboat.config import Settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# MLflow phones home by default; Lifeboat runs offline and says nothing about its users.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def configure_tracking(settings: Settings) -> MlflowClient:
    import mlflow
    from mlflow.tracking import MlflowClient

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
