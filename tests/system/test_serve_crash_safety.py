"""A prediction answered with an id is never lost: `lifeboat serve` killed with SIGKILL under
load leaves its journal behind, and the next start writes every acknowledged prediction
into the database, once.

The server is a real subprocess, on SQLite and on the real PostgreSQL server; clients send
single records, batches, entity ids and CSV uploads, so every route that logs is covered.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, Prediction
from tests.support.homes import trained_home
from tests.support.live_server import free_port, wait_ready
from tests.support.passengers import BRAUND, stored_passengers

ACKNOWLEDGED_BEFORE_KILL = 400
CSV = ("PassengerId,Pclass,Name,Sex,Age,SibSp,Parch,Fare,Embarked\n"
       '1,3,"Braund, Mr. Owen Harris",male,22,1,0,7.25,S\n'
       '2,1,"Cumings, Mrs. John Bradley",female,38,1,0,71.28,C\n')


def start_server(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("LIFEBOAT_") and name not in ("DATABASE_URL",
                                                                "MLFLOW_TRACKING_URI")}
    env.update(LIFEBOAT_HOME=str(settings.home), DATABASE_URL=settings.db_url,
               LIFEBOAT_PORT=str(port), LIFEBOAT_LOG_LEVEL="WARNING")
    return subprocess.Popen([sys.executable, "-m", "lifeboat", "serve"], env=env,
                            cwd=settings.home.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every server started, killed by pid at the end whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for server in started:
        if server.poll() is None:
            server.kill()
        server.wait(30)


class Load:
    """Client threads sending requests until the server is gone, each recording the ids of
    the predictions answered 200."""

    REQUESTS = (
        ("json", {"records": [BRAUND]}),
        ("json", BRAUND),
        ("json", {"records": [BRAUND, {**BRAUND, "Sex": "female"}]}),
        ("entities", None),
        ("csv", None),
    )

    def __init__(self, base: str, clients: int, entity_ids: list[str]) -> None:
        self._base = base
        self._entities = {"entity_ids": entity_ids}
        self._lock = threading.Lock()
        self.ids: list[str] = []
        self._threads = [threading.Thread(target=self._client, args=(n,))
                         for n in range(clients)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(30)

    def count(self) -> int:
        with self._lock:
            return len(self.ids)

    def _client(self, number: int) -> None:
        with httpx.Client(base_url=self._base, timeout=10) as client:
            for turn in range(number, 1_000_000):
                kind, body = self.REQUESTS[turn % len(self.REQUESTS)]
                try:
                    if kind == "csv":
                        response = client.post("/predict/csv", files={
                            "file": ("two.csv", io.BytesIO(CSV.encode()), "text/csv")})
                    else:
                        response = client.post("/predict", json=body or self._entities)
                except httpx.TransportError:
                    return  # the server was killed
                assert response.status_code == 200 and not response.json().get("errors"), \
                    response.text
                with self._lock:
                    self.ids.extend(item["id"] for item in response.json()["predictions"])


def logged(database: Database, ids: list[str]) -> set[str]:
    found: set[str] = set()
    with database.session() as session:
        for first in range(0, len(ids), 500):
            found.update(session.scalars(select(Prediction.id).where(
                Prediction.id.in_(ids[first:first + 500]))))
    return found


def test_kill_9_under_load_loses_no_acknowledged_prediction(
        database_url: str, titanic: DatasetSpec, tmp_path: Path,
        servers: list[subprocess.Popen[bytes]]) -> None:
    settings = trained_home(tmp_path / "home", titanic, database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    servers.append(start_server(settings, port))
    wait_ready(servers[0], base)

    load = Load(base, clients=4, entity_ids=stored_passengers(settings, titanic, 3))
    load.start()
    deadline = time.monotonic() + 60
    while load.count() < ACKNOWLEDGED_BEFORE_KILL and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(servers[0].pid, signal.SIGKILL)
    servers[0].wait(30)
    load.join()
    acknowledged = list(load.ids)
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL
    assert len(set(acknowledged)) == len(acknowledged)
    journal = list((settings.resolved_home / "spool").glob("predictions-*.jsonl"))
    assert journal, "the killed process left no journal"

    database = Database(settings.db_url)
    try:
        servers.append(start_server(settings, port))
        wait_ready(servers[1], base)
        deadline = time.monotonic() + 30
        while len(missing := set(acknowledged) - logged(database, acknowledged)) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged predictions lost"
        assert not any(path.exists() for path in journal), "the replayed journal was kept"
        servers[1].send_signal(signal.SIGINT)
        assert servers[1].wait(60) == 0
    finally:
        database.dispose()
