"""Exactly once: a load killed with SIGKILL mid-file leaves nothing, and a rerun loads it once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, IngestionRun, upgrade
from lifeboat.ingest import LandingZone, ingest_file, row_count
from lifeboat.synthetic.passengers import inject_errors, synthetic_passengers, write_passengers

ROWS = 300_000


def _run_statuses(database: Database) -> list[str]:
    with database.session() as session:
        return list(session.scalars(select(IngestionRun.status).order_by(IngestionRun.id)))


def _start_ingest(database_url: str, source: Path, home: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "LIFEBOAT_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "lifeboat", "ingest", str(source)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for_running_run(database: Database, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while "running" not in _run_statuses(database):
        assert process.poll() is None and time.monotonic() < deadline, "the load never started"
        time.sleep(0.05)


def test_kill_9_mid_load_then_rerun_loads_exactly_once(
        database_url: str, titanic: DatasetSpec, tmp_path: Path) -> None:
    passengers, truth = inject_errors(synthetic_passengers(ROWS, seed=3), rate=0.01, seed=3)
    source = tmp_path / "passengers.csv"
    write_passengers(passengers, source)
    database = Database(database_url)
    upgrade(database)

    process = _start_ingest(database_url, source, tmp_path / "home")
    _wait_for_running_run(database, process)
    time.sleep(1.0)
    assert process.poll() is None, "the load finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert row_count(database, titanic) == 0

    zone = LandingZone(str(tmp_path / "landing"))
    report = ingest_file(database, titanic, str(source), zone)
    again = ingest_file(database, titanic, str(source), zone)
    assert report.rows_loaded == ROWS - len(truth) and report.rows_rejected == len(truth)
    assert again.status == "skipped"
    assert row_count(database, titanic) == ROWS - len(truth)
    assert _run_statuses(database) == ["failed", "succeeded", "duplicate"]
    with database.session() as session:
        killed = session.scalars(select(IngestionRun).order_by(IngestionRun.id)).first()
    assert killed.error.startswith(f"abandoned: process {process.pid} ")
    database.dispose()
