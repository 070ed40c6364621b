"""The processes a test starts, stopped after it as Ctrl-C stops them (SIGINT, then SIGKILL
if one has not exited within 30 s): a fixture for tests that run Lifeboat's commands."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    """Append each process started; all are stopped when the test ends."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
