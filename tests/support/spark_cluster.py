"""A real Spark standalone cluster on loopback: a master and workers, each a process started
from PySpark's own launch script (`bin/spark-class`), as a cluster node runs them.

Every Spark test runs on it, not on `local[*]`: tasks go to executors in other JVMs, with
Python workers of their own, so whatever a job ships (the scorer, the settings) crosses a
process boundary as it would on a real cluster. Java missing fails the tests (`make test`
installs it); a skip would hide the engine.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

START_SECONDS = 90
WORKER_MEMORY = "1g"
_REGISTERED = re.compile(r"Successfully registered with master|I have been elected leader")


class SparkCluster:
    """A master and its workers (one core each); `kill_worker` takes one down abruptly, as a
    lost node goes, and `add_worker` brings another up."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.master_url = f"spark://127.0.0.1:{self.port}"
        self._master: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def start(self, workers: int = 2) -> SparkCluster:
        self._master = self._launch("master", "org.apache.spark.deploy.master.Master",
                                    "--host", "127.0.0.1", "--port", str(self.port),
                                    "--webui-port", str(_free_port()))
        for _ in range(workers):
            self.add_worker()
        return self

    def add_worker(self) -> subprocess.Popen:
        index = len(self.workers)
        work = self.folder / f"worker-{index}"
        worker = self._launch(f"worker-{index}", "org.apache.spark.deploy.worker.Worker",
                              "--host", "127.0.0.1", "--cores", "1", "--memory", WORKER_MEMORY,
                              "--webui-port", str(_free_port()), "--work-dir", str(work),
                              self.master_url)
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: subprocess.Popen) -> None:
        """SIGKILL, no goodbye: its executor loses its worker and exits, its tasks run again
        elsewhere."""
        worker.kill()
        worker.wait()
        self.workers.remove(worker)

    def live_workers(self) -> list[subprocess.Popen]:
        return [worker for worker in self.workers if worker.poll() is None]

    def stop(self) -> None:
        for process in [*self.workers, self._master]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [*self.workers, self._master]:
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.workers, self._master = [], None

    def _launch(self, name: str, main_class: str, *arguments: str) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        process = subprocess.Popen(
            [str(_spark_home() / "bin" / "spark-class"), main_class, *arguments],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=_environment(self.folder))
        _wait_for(process, log, name)
        return process


def _spark_home() -> Path:
    try:
        import pyspark
    except ImportError:
        pytest.fail("PySpark is not installed (pip install -e '.[dev]')", pytrace=False)
    return Path(pyspark.__file__).parent


def _environment(folder: Path) -> dict[str, str]:
    """The launching process's environment (its PYTHONPATH reaches the executors' Python
    workers), with Spark's scratch space in the test's folder."""
    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        pytest.fail("Java is not installed (apt-get install openjdk-17-jre-headless)",
                    pytrace=False)
    return {**os.environ, "SPARK_HOME": str(_spark_home()), "SPARK_LOCAL_DIRS": str(folder),
            "SPARK_LOG_DIR": str(folder), "SPARK_WORKER_DIR": str(folder)}


def _wait_for(process: subprocess.Popen, log: Path, name: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not _REGISTERED.search(log.read_text(errors="replace")):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"Spark {name} did not start: {log.read_text(errors='replace')[-2000:]}",
                        pytrace=False)
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
