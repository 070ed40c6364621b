"""Points MLflow at Lifeboat's tracking store: SQLite under LIFEBOAT_HOME unless told otherwise,
or a tracking server (`MLFLOW_TRACKING_URI=http://host:5000`) that several machines share.

MLflow is imported when a registry is first opened, not with this package: its own import
loads its AI gateway and with it FastAPI (0.1 s and more), which scoring, the CLI's help
and anything else that merely imports the registry's names should not pay for.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lifeboat.config import Settings
from lifeboat.errors import LifeboatError
from lifeboat.logs import route_mlflow_events

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# MLflow phones home by default; Lifeboat runs offline and says nothing about its users.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# MLflow's HTTP client retries 7 times with a backoff doubling from 2 s, each try waiting up
# to 120 s: a tracking server that is down held a command or a replica's start for minutes.
# Two retries (about 2 s in all) ride out a dropped connection or a brief restart; a server
# that is really down is then named at once. Each stays overridable from the environment.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
for _name, _value in _HTTP_DEFAULTS.items():
    os.environ.setdefault(_name, _value)


def _not_a_tracking_retry(record: logging.LogRecord) -> bool:
    """urllib3 warns of each retry; for the tracking server's calls the outcome is what
    matters (an answer, or one `TrackingServerUnavailable` line), not the tries before it."""
    args = record.args if isinstance(record.args, tuple) else ()
    return not (str(record.msg).startswith("Retrying") and any("/mlflow" in str(arg)
                                                                for arg in args))


logging.getLogger("urllib3.connectionpool").addFilter(_not_a_tracking_retry)


class TrackingServerUnavailable(LifeboatError):
    """The MLflow tracking server gave no answer: down, unreachable, or failing every try.

    Not an MlflowException, so that code treating MLflow's errors as "no such model" or
    "no such alias" never mistakes an outage for an empty registry."""


def configure_tracking(settings: Settings) -> MlflowClient:
    """A client of the settings' store whose calls raise `TrackingServerUnavailable` when a
    tracking server does not answer."""
    import mlflow
    from mlflow.tracking import MlflowClient

    route_mlflow_events()
    if settings.mlflow_tracking_uri is None:
        settings.ensure_home()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    return _Answering(client, settings.tracking_uri)


def experiment_id(client: MlflowClient, settings: Settings, dataset: str) -> str:
    """The dataset's experiment; artifacts live beside the embedded store unless a server is used."""
    name = f"lifeboat-{dataset}"
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None if settings.mlflow_tracking_uri else settings.artifact_root.as_uri()
    return client.create_experiment(name, artifact_location=location)


def run_url(settings: Settings, experiment: str | None, run_id: str | None) -> str | None:
    """The run's page in the MLflow UI (its routes are hash routes); None without a UI."""
    ui = settings.tracking_ui_url
    if ui is None or not experiment or not run_id:
        return None
    return f"{ui.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"


@contextmanager
def server_answering(tracking_uri: str) -> Iterator[None]:
    """Turns MLflow's error for a server that gave no answer into one line naming it.

    MLflow raises the same MlflowException class for "not found" as for a refused
    connection; only the HTTP library's exception it was raised from tells them apart."""
    from mlflow.exceptions import MlflowException
    from requests import exceptions as http

    try:
        yield
    except MlflowException as exc:
        cause = exc.__cause__ or exc.__context__
        if not isinstance(cause, http.RequestException):
            raise
        reason = ("no connection" if isinstance(cause, http.ConnectionError)
                  else "timed out" if isinstance(cause, http.Timeout) else "errors on every try")
        raise TrackingServerUnavailable(
            f"the MLflow tracking server at {tracking_uri} does not answer ({reason}): "
            "start it, or point MLFLOW_TRACKING_URI at one that runs") from None


class _Answering:
    """An MlflowClient whose every call goes through `server_answering`."""

    def __init__(self, client: MlflowClient, tracking_uri: str) -> None:
        self._client = client
        self._tracking_uri = tracking_uri

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if not callable(found):
            return found

        @functools.wraps(found)
        def call(*args: Any, **kwargs: Any) -> Any:
            with server_answering(self._tracking_uri):
                return found(*args, **kwargs)

        return call
