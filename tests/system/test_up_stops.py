"""Every way of stopping `lifeboat up` leaves no Lifeboat process behind: Ctrl-C, SIGTERM,
SIGHUP (a closed terminal), and `up` itself killed with SIGKILL, which no handler sees.

`up` runs in a session of its own, so every process it starts (the embedded jobs, the
multiprocessing helpers) is found in /proc by its session id, whoever its parent became.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from tests.support.homes import trained_home
from tests.support.live_server import free_port, wait_ready

STOP_SECONDS = 30


def session_members(session: int) -> dict[int, str]:
    """The live (not zombie) processes of a session, with their command lines."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:  # exited while listed
            continue
        state, _ppid, _group, sid = stat[stat.rindex(")") + 2:].split()[:4]
        if int(sid) == session and state != "Z":
            members[int(entry.name)] = command
    return members


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, titanic: DatasetSpec) -> Settings:
    return trained_home(tmp_path_factory.mktemp("stops") / "home", titanic)


@pytest.fixture
def up(home: Settings) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`lifeboat up` in its own session; whatever the test did, every process of the session
    is killed by pid at the end."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("LIFEBOAT_") and name not in ("DATABASE_URL",
                                                                "MLFLOW_TRACKING_URI")}
    port = free_port()
    env.update(LIFEBOAT_HOME=str(home.home), LIFEBOAT_PORT=str(port))
    process = subprocess.Popen([sys.executable, "-m", "lifeboat", "up"], env=env,
                               cwd=home.home.parent, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        for pid in session_members(process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL],
                         ids=lambda stop: stop.name)
def test_no_process_outlives_up(up: tuple[subprocess.Popen[str], str],
                                stop: signal.Signals) -> None:
    process, base = up
    wait_ready(process, base, timeout=300)
    started = session_members(process.pid)
    assert any("multiprocessing.spawn" in command for command in started.values()), \
        f"the embedded jobs process is not running: {started}"

    os.kill(process.pid, stop)
    deadline = time.monotonic() + STOP_SECONDS
    while (left := session_members(process.pid)) and time.monotonic() < deadline:
        process.poll()  # reaps `up` once it exits, so it stops counting
        time.sleep(0.2)

    assert left == {}, f"still running {STOP_SECONDS} s after {stop.name}: {left}"
    assert process.wait(5) == (-signal.SIGKILL if stop == signal.SIGKILL else 0)
