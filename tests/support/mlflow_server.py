"""A real `mlflow server` on a free loopback port: runs and the registry in a scratch
PostgreSQL database, artifacts in a bucket of the moto S3 server, served through the
tracking server's own proxy (`--serve-artifacts`), so that clients need only its URL.

Only the server process is given S3 credentials and the endpoint; a test that loads a model
with nothing but `MLFLOW_TRACKING_URI` therefore proves the proxy works. MLflow's job
runner (a supervisor and three huey consumers, for its GenAI jobs) is turned off: Lifeboat
runs no MLflow jobs, and without it the server answers in about 6 s instead of 10 on this
machine's two shared cores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest

from tests.support.live_server import free_port
from tests.support.object_storage import S3_CREDENTIALS
from tests.support.services import scratch_postgres_database

START_SECONDS = 90
STOP_SECONDS = 15


class MlflowServer:
    """One `mlflow server` process group; `stop` ends it and its uvicorn worker."""

    def __init__(self, backend_store_uri: str, s3_endpoint: str, log: Path) -> None:
        self.backend_store_uri = backend_store_uri
        self.s3_endpoint = s3_endpoint
        self.bucket = f"mlflow-{uuid.uuid4().hex[:12]}"
        self.port = free_port()
        self.log = log
        self.seconds_to_start: float | None = None
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def artifacts_destination(self) -> str:
        return f"s3://{self.bucket}/artifacts"

    def s3(self):  # noqa: ANN201 (boto3's client types are generated)
        """A client of the bucket the server writes artifacts to, as its owner sees it."""
        return boto3.client("s3", endpoint_url=self.s3_endpoint,
                            region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
                            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def artifact_keys(self) -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def start(self) -> MlflowServer:
        self.s3().create_bucket(Bucket=self.bucket)
        started = time.monotonic()
        with self.log.open("ab") as output:
            # A session of its own: the server runs uvicorn as a child, stopped with it.
            self._process = subprocess.Popen(
                [str(Path(sys.executable).with_name("mlflow")), "server",
                 "--backend-store-uri", self.backend_store_uri,
                 "--artifacts-destination", self.artifacts_destination, "--serve-artifacts",
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                env=self._environment(), stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True)
        self._wait_until_answering()
        self.seconds_to_start = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        except ProcessLookupError:
            self._process.wait()
        self._process = None

    def _environment(self) -> dict[str, str]:
        """The S3 endpoint and credentials for the server alone; the developer's own
        tracking URI and AWS settings left out."""
        inherited = {name: value for name, value in os.environ.items()
                     if not name.startswith(("AWS_", "MLFLOW_"))}
        return {**inherited, **S3_CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-3000:]
                pytest.fail(f"mlflow server did not answer on {self.url} within "
                            f"{START_SECONDS} s:\n{tail}", pytrace=False)
            time.sleep(0.2)


@contextmanager
def running_mlflow_server(s3_endpoint: str, folder: Path) -> Iterator[MlflowServer]:
    """A server on a fresh database and bucket, stopped and its database dropped after."""
    with scratch_postgres_database("lifeboat_mlflow") as database_url:
        server = MlflowServer(database_url, s3_endpoint, folder / "mlflow-server.log").start()
        try:
            yield server
        finally:
            server.stop()
