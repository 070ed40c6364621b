"""A throwaway redis-server on a free loopback port, for tests that take Redis down and up.

No persistence, so a restart comes back empty, as a crashed cache would. A missing
`redis-server` binary fails the test: a skip would hide the outage behaviour it checks.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis

START_SECONDS = 10


class RedisServer:
    """One redis-server process; `stop` kills it abruptly, `start` brings it back on its port."""

    def __init__(self, *options: str) -> None:
        """`options` are added to redis-server's command line (a cluster node's, say)."""
        self.port = _free_port()
        self.options = options
        self._process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._process is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)",
                        pytrace=False)
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_until_answering()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def _wait_until_answering(self) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + START_SECONDS
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        pytest.fail(f"redis-server did not start on port {self.port}",
                                    pytrace=False)
                    time.sleep(0.02)
        finally:
            client.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
