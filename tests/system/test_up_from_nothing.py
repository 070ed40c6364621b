"""`lifeboat up` end to end: an empty home to a served, logged prediction, the landing zone's
files scored and the monitoring loop turning in its jobs process, then a fast restart."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd

from lifeboat.synthetic.passengers import synthetic_passengers, write_passengers
from tests.support.live_server import free_port, wait_ready
from tests.support.passengers import BRAUND


def start_up(home: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MLFLOW_TRACKING_URI")}
    env.update(LIFEBOAT_HOME=str(home), LIFEBOAT_PORT=str(port), LIFEBOAT_SEARCH_ITERATIONS="2")
    return subprocess.Popen([sys.executable, "-m", "lifeboat", "up"], env=env, cwd=home.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    return output


def _drop_into_raw(home: Path, passengers: pd.DataFrame) -> None:
    raw = home / "landing" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    write_passengers(passengers, raw / ".arrivals.csv")
    (raw / ".arrivals.csv").rename(raw / "arrivals.csv")


def _wait_for_scheduled(base: str, rows: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline and total < rows:
        time.sleep(1)
        total = httpx.get(f"{base}/past-predictions", params={"source": "scheduled"}).json()["total"]
    return total


def _monitoring_turns(base: str, timeout: float) -> list[tuple[str, str]]:
    """The `drift` job's runs (trigger, status), once there is one or at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        runs = httpx.get(f"{base}/jobs", params={"job": "drift"}).json()["items"]
        if runs or time.monotonic() > deadline:
            return [(run["trigger"], run["status"]) for run in runs]
        time.sleep(1)


def test_up_from_nothing_serves_and_logs_then_restarts_without_retraining(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    base = f"http://127.0.0.1:{port}"
    first = start_up(home, port)
    try:
        wait_ready(first, base, timeout=600)
        prediction = httpx.post(f"{base}/predict", json=BRAUND).json()["predictions"][0]
        assert 0 < prediction["probability"] < 1
        logged = httpx.get(f"{base}/past-predictions").json()["items"]
        assert [item["id"] for item in logged] == [prediction["id"]]
        _drop_into_raw(home, synthetic_passengers(40, seed=21))
        scheduled = _wait_for_scheduled(base, rows=40, timeout=120)
        assert scheduled == 40, "a file dropped into raw/ is ingested and scored by `up`'s jobs"
        assert ("schedule", "succeeded") in _monitoring_turns(base, timeout=60), (
            "`up`'s jobs process runs the monitoring loop")
    finally:
        output = stop(first)
    assert "loaded 1309 titanic rows" in output and "trained lifeboat-titanic v1" in output
    assert f"{base}/docs" in output

    second = start_up(home, port)
    try:
        wait_ready(second, base, timeout=120)
        assert httpx.get(f"{base}/past-predictions").json()["total"] == 1 + 40
    finally:
        output = stop(second)
    assert "trained" not in output and "loaded" not in output
    assert "champion: lifeboat-titanic v1" in output
