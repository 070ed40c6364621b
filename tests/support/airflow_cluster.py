"""Airflow 3 with the CeleryExecutor, each role a process of its own as a deployment runs
them: the scheduler, the DAG processor, the API server (which task processes report to, by
its execution API) and a Celery worker, sharing one configuration through the environment.
The metadata DB and Celery's result backend are a PostgreSQL database; the broker is Redis.

Every process starts in a session of its own and is stopped by process group: the Celery
worker forks its pool, the API server its uvicorn worker, each task its supervisor.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import make_url

from tests.support.airflow import (
    AIRFLOW,
    DAG_IDS,
    DAGS,
    DagRun,
    Metadata,
    clean_env,
    output_tail,
)

START_SECONDS = 180
RUN_SECONDS = 600
RESULT_SECONDS = 60
STOP_SECONDS = 30
POLL_SECONDS = 0.5
ROLES = {
    "api-server": ("api-server", "--host", "127.0.0.1"),
    "scheduler": ("scheduler",),
    "dag-processor": ("dag-processor",),
    "celery-worker": ("celery", "worker", "--concurrency", "2"),
}
ADMIN = "admin"
# The Celery worker says so once it consumes from the broker.
WORKER_READY = " ready."


class AirflowCluster:
    """One Airflow deployment on loopback under `folder` (its AIRFLOW_HOME and the roles'
    logs), with `extra_env` (Lifeboat's settings) passed to every role and so to the tasks."""

    def __init__(self, folder: Path, metadata_url: str, broker_url: str,
                 extra_env: dict[str, str]) -> None:
        self.home = folder / "airflow_home"
        self.logs = folder / "roles"
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(16)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN: self.password}))
        self.metadata_url = metadata_url
        self.env = {**clean_env(), **extra_env, **self._shared_settings(broker_url)}
        self._processes: dict[str, subprocess.Popen] = {}
        self._logs: list[IO[bytes]] = []
        self._client: httpx.Client | None = None

    def _shared_settings(self, broker_url: str) -> dict[str, str]:
        """The configuration every role shares (deploy/README.md lists it). Airflow talks to
        PostgreSQL through psycopg2, the driver its postgres extra brings."""
        conn = make_url(self.metadata_url).set(drivername="postgresql+psycopg2").render_as_string(
            hide_password=False)
        return {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn,
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{conn}",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            # The worker serves its task logs to the API server; a fixed port could clash.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        }

    # --- lifecycle ---------------------------------------------------------------------

    def migrate(self) -> float:
        """`airflow db migrate`; its duration."""
        started = time.monotonic()
        result = subprocess.run([str(AIRFLOW), "db", "migrate"], env=self.env, cwd=self.home,
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"`airflow db migrate` exited {result.returncode}:\n"
                        f"{output_tail(result)}", pytrace=False)
        return time.monotonic() - started

    def start(self) -> float:
        """Every role at once, then waits until the API server reports the scheduler and the
        DAG processor healthy, the worker listens and every DAG is parsed; the duration."""
        started = time.monotonic()
        for role, arguments in ROLES.items():
            self._logs.append((self.logs / f"{role}.log").open("wb"))
            self._processes[role] = subprocess.Popen(
                [str(AIRFLOW), *arguments], env=self.env, cwd=self.home, stdout=self._logs[-1],
                stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_for("the API server to answer", self._api_answers, START_SECONDS)
        self._wait_for("the scheduler and DAG processor to be healthy",
                       self._components_healthy, START_SECONDS)
        self._wait_for("the Celery worker to be ready",
                       lambda: WORKER_READY in self.log("celery-worker") or None, START_SECONDS)
        self._wait_for("every DAG to be parsed", self._dags_parsed, START_SECONDS)
        return time.monotonic() - started

    def stop(self) -> None:
        """SIGTERM to each role's process group (a worker finishes its task), SIGKILL to any
        left after STOP_SECONDS."""
        if self._client is not None:
            self._client.close()
        for process in self._processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in self._processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)
            process.wait()
        self._processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def log(self, role: str) -> str:
        return (self.logs / f"{role}.log").read_text(errors="replace")

    def tail(self, role: str, lines: int = 40) -> str:
        return "\n".join(self.log(role).splitlines()[-lines:])

    def _api_answers(self) -> bool | None:
        try:
            response = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=2)
        except httpx.TransportError:
            return None
        return response.status_code == 200 or None

    def _components_healthy(self) -> bool | None:
        health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        return all(health.get(component, {}).get("status") == "healthy"
                   for component in ("metadatabase", "scheduler", "dag_processor")) or None

    def _dags_parsed(self) -> bool | None:
        dags = self.api("GET", "/dags", params={"limit": 100})["dags"]
        return sorted(dag["dag_id"] for dag in dags) == list(DAG_IDS) or None

    # --- running DAGs --------------------------------------------------------------------

    def run(self, dag_id: str, *, trigger: bool = False) -> DagRun:
        """Unpauses `dag_id`, so the scheduler starts the run its timetable has due, or, with
        `trigger`, one triggered through the REST API; that run once ended, the DAG paused
        again, so that it runs only when a test says."""
        started = time.monotonic()
        known = self.run_ids(dag_id)
        with self.unpaused(dag_id):
            if not trigger:
                return self.next_run(dag_id, known, started)
            run_id = self.api("POST", f"/dags/{dag_id}/dagRuns",
                              json={"logical_date": None})["dag_run_id"]
            return self._ended_run(dag_id, run_id, started)

    @contextmanager
    def unpaused(self, dag_id: str) -> Iterator[None]:
        """`dag_id` unpaused meanwhile: the scheduler runs it, and an asset event queues it
        (not while paused)."""
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        try:
            yield
        finally:
            self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": True})

    def next_run(self, dag_id: str, known: set[str], started: float | None = None) -> DagRun:
        """The first run of `dag_id` not in `known`, once the scheduler has started it and it
        has ended (its duration counted from `started`, else from now)."""
        started = started or time.monotonic()
        run_id = self._wait_for(f"the scheduler to start {dag_id}",
                                lambda: next(iter(self.run_ids(dag_id) - known), None))
        return self._ended_run(dag_id, run_id, started)

    def _ended_run(self, dag_id: str, run_id: str, started: float) -> DagRun:
        """The run as Airflow recorded it once ended; one that did not succeed fails, with its
        task logs' tails."""
        state = self._wait_for(f"{dag_id} run {run_id} to end",
                               lambda: self._ended(dag_id, run_id))
        with self.metadata() as metadata:
            run = metadata.dag_run(dag_id, run_id, time.monotonic() - started)
        assert state == "success", (
            f"{dag_id} run {run_id} ended {state}, tasks {run.tasks}:\n"
            f"{self.task_logs(dag_id, run_id)}\n--- celery worker:\n{self.tail('celery-worker')}")
        print(f"{dag_id} ({run.run_type}): {state} in {run.seconds:.0f} s")
        return run

    def metadata(self) -> Metadata:
        """The metadata DB (and Celery's result table beside it), read from this interpreter."""
        return Metadata(self.metadata_url)

    def task_logs(self, dag_id: str, run_id: str, lines: int = 30) -> str:
        """The tail of each task's log of a run, as the worker wrote them under AIRFLOW_HOME."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        return "\n".join(
            f"--- {log.relative_to(folder)}:\n" +
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            for log in sorted(folder.rglob("*.log"))) or f"no task log in {folder}"

    def run_ids(self, dag_id: str) -> set[str]:
        return {run["dag_run_id"] for run in self.api(
            "GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]}

    def _ended(self, dag_id: str, run_id: str) -> str | None:
        state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        return state if state in ("success", "failed") else None

    def celery_results(self, celery_ids: list[str]) -> dict[str, str]:
        """The state Celery's result backend holds for each of its task ids, once none is
        running: the worker records it only after the task has reported its end to the API
        server, so a run can succeed a moment before."""
        def settled() -> dict[str, str] | None:
            with self.metadata() as metadata:
                results = dict(metadata.query("SELECT task_id, status FROM celery_taskmeta"))
            found = {celery_id: results.get(celery_id, "PENDING") for celery_id in celery_ids}
            return None if {"PENDING", "STARTED"} & set(found.values()) else found
        return self._wait_for(f"Celery's results of {celery_ids}", settled, RESULT_SECONDS)

    def _wait_for(self, what: str, outcome: Any, seconds: float = RUN_SECONDS) -> Any:
        """What `outcome` returns once it is not None; fails, with every role's log tail,
        after `seconds` or as soon as a role has exited."""
        deadline = time.monotonic() + seconds
        while (found := outcome()) is None:
            exited = {role: process.returncode for role, process in self._processes.items()
                      if process.poll() is not None}
            if exited or time.monotonic() > deadline:
                tails = "\n".join(f"--- {role}:\n{self.tail(role)}" for role in self._processes)
                pytest.fail(f"waited {time.monotonic() - deadline + seconds:.0f} s for {what}; "
                            f"roles exited: {exited}\n{tails}", pytrace=False)
            time.sleep(POLL_SECONDS)
        return found

    # --- the REST API v2 ---------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call to /api/v2 as the admin; an error status fails with Airflow's answer."""
        response = self._session().request(method, f"/api/v2{path}", **kwargs)
        assert response.is_success, (
            f"{method} /api/v2{path}: {response.status_code} {response.text[:2000]}")
        return response.json()

    def _session(self) -> httpx.Client:
        if self._client is None:
            token = httpx.post(f"{self.url}/auth/token", timeout=10,
                               json={"username": ADMIN, "password": self.password})
            assert token.status_code == 201, f"no token: {token.status_code} {token.text}"
            self._client = httpx.Client(
                base_url=self.url, timeout=30,
                headers={"Authorization": f"Bearer {token.json()['access_token']}"})
        return self._client


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
