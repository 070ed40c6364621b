"""The jobs process's own Prometheus metrics: `lifeboat schedule`, a real process on a
scratch database and landing zone, answers /metrics on LIFEBOAT_JOBS_METRICS_PORT with the
scheduler's heartbeat per job, which moves on as turns finish; a second jobs process whose
port is taken runs its jobs all the same."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from lifeboat.config import Settings
from lifeboat.db import Database, JobRun
from tests.support.homes import make_settings
from tests.support.live_server import free_port

SECONDS = 120
HEARTBEAT = "lifeboat_scheduler_heartbeat_timestamp_seconds"


@pytest.fixture
def scratch(trained_settings: Settings, tmp_path: Path) -> Settings:
    """The session's champion (only read), a database and landing zone of this test's."""
    return make_settings(trained_settings.home, f"sqlite:///{tmp_path / 'jobs.db'}",
                         storage_url=str(tmp_path / "landing"))


def _schedule(settings: Settings, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "LIFEBOAT_HOME": str(settings.home), "DATABASE_URL": settings.db_url,
           "LIFEBOAT_STORAGE_URL": settings.landing_url, "LIFEBOAT_JOBS_METRICS_PORT": str(port),
           "LIFEBOAT_INGEST_EVERY_SECONDS": "0.5", "LIFEBOAT_SCORE_EVERY_SECONDS": "0.7",
           "LIFEBOAT_DRIFT_CHECK_SECONDS": "3600", "LIFEBOAT_LOG_LEVEL": "WARNING"}
    for name in ("MLFLOW_TRACKING_URI", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "lifeboat", "schedule"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _heartbeats(port: int, process: subprocess.Popen[str]) -> dict[str, float]:
    """job name -> heartbeat, once /metrics answers with both landing jobs' heartbeats."""
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"schedule exited: {process.stdout.read()[-2000:]}"
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.TransportError:
            text = ""
        beats = {job: float(value) for job, value in re.findall(
            rf'^{HEARTBEAT}\{{dataset="titanic",job_name="(\w+)"\}} (\S+)$', text, re.MULTILINE)}
        if {"ingest", "score"} <= set(beats):
            intervals = dict(re.findall(
                r'^lifeboat_scheduler_interval_seconds\{dataset="titanic",job_name="(\w+)"\} '
                r'(\S+)$', text, re.MULTILINE))
            assert (intervals["ingest"], intervals["score"]) == ("0.5", "0.7"), intervals
            return beats
        time.sleep(0.3)
    pytest.fail(f"no heartbeat of the ingest and score jobs at :{port}/metrics", pytrace=False)


def test_schedule_serves_its_heartbeat_on_the_jobs_metrics_port(
        scratch: Settings, processes: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    started = time.time()
    processes.append(_schedule(scratch, port))
    first = _heartbeats(port, processes[0])
    assert all(started <= beat <= time.time() for beat in first.values()), first
    deadline = time.monotonic() + SECONDS
    while True:  # every turn beats: the ingest job's heartbeat moves on
        later = _heartbeats(port, processes[0])
        if later["ingest"] > first["ingest"]:
            break
        assert time.monotonic() < deadline, "the heartbeat did not move"
        time.sleep(0.3)


def test_a_jobs_process_whose_metrics_port_is_taken_runs_its_jobs(
        scratch: Settings, processes: list[subprocess.Popen[str]]) -> None:
    """As `lifeboat up`'s embedded jobs beside a `lifeboat schedule` on one host: the
    second process warns and goes on."""
    port = free_port()
    processes.append(_schedule(scratch, port))
    _heartbeats(port, processes[0])
    processes.append(_schedule(scratch, port))
    database = Database(scratch.db_url)
    try:
        deadline = time.monotonic() + SECONDS
        while True:
            with database.session() as session:
                pids = set(session.scalars(select(JobRun.pid).where(JobRun.job == "ingest")))
            if processes[1].pid in pids:
                break
            assert processes[1].poll() is None, processes[1].stdout.read()[-2000:]
            assert time.monotonic() < deadline, "the second jobs process ran no job"
            time.sleep(0.3)
    finally:
        database.dispose()
    processes[1].send_signal(signal.SIGINT)
    output = processes[1].communicate(timeout=30)[0]
    assert f"the jobs' metrics are not served on 127.0.0.1:{port}" in output, output[-2000:]
    assert "Traceback" not in output
