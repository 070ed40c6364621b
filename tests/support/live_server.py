"""A real uvicorn server in a thread, on a free loopback port: HTTP tests go over a socket;
and waiting for a server started as a process (`lifeboat serve`, `lifeboat up`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))  # bound before uvicorn starts: no race for the port
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                pytest.fail("uvicorn did not start", pytrace=False)
            thread.join(0.05)
        try:
            yield f"http://127.0.0.1:{listening.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(process: subprocess.Popen, base: str, timeout: float = 120) -> None:
    """Until `base/ready` answers 200; fails with the process's last output if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stream = process.stderr or process.stdout
            output = stream.read() if stream else ""
            text = output.decode(errors="replace") if isinstance(output, bytes) else output
            pytest.fail(f"the server exited: {text[-2000:]}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"the server was not ready within {timeout} s")


@contextmanager
def serving_with_workers(home: Path, metrics: Path, workers: int = 2) -> Iterator[str]:
    """`lifeboat serve` on `home` with uvicorn's `workers` counting into the `metrics`
    folder, none of the developer's services; its base URL, stopped after."""
    port = free_port()
    env = {**os.environ, "LIFEBOAT_HOME": str(home), "LIFEBOAT_PORT": str(port),
           "LIFEBOAT_WORKERS": str(workers), "LIFEBOAT_LOG_LEVEL": "WARNING",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    for name in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "REDIS_URL"):
        env.pop(name, None)
    server = subprocess.Popen([sys.executable, "-m", "lifeboat", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(server, base)
        yield base
    finally:
        server.terminate()
        server.wait(30)
