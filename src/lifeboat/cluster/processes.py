"""The processes a local cluster runs: each started in a session of its own with its output
in a log file, waited for until it answers, and stopped by its process group."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from lifeboat.errors import LifeboatError

_PR_SET_PDEATHSIG = 1


class RoleFailed(LifeboatError):
    """A role's process exited or did not answer in time; the message ends with its log."""


@dataclass
class Role:
    """One process of the topology: `command` run with `env`, answering at `ready_url`."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    ready_url: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Role:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_terminate_with_parent)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float) -> None:
        """Returns once `ready_url` answers 200; RoleFailed if the process exits first or
        `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RoleFailed(f"{self.name} exited before answering{self._log_tail()}")
            if self.ready_url is None or _answers(self.ready_url):
                return
            time.sleep(0.25)
        raise RoleFailed(f"{self.name} did not answer {self.ready_url} within {timeout:g} s"
                         f"{self._log_tail()}")

    def wait_exit(self, timeout: float) -> None:
        """Waits for a one-off command to finish; RoleFailed unless it succeeds in time."""
        assert self.process is not None, f"{self.name} was not started"
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RoleFailed(f"{self.name} did not finish within {timeout:g} s"
                             f"{self._log_tail()}") from None
        if code != 0:
            raise RoleFailed(f"{self.name} failed (exit code {code}){self._log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to its process group (a server's workers with it), SIGKILL after
        `timeout` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        _signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            tail = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"; the end of {self.log}:\n" + "\n".join(tail)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def _terminate_with_parent() -> None:
    """In the child, before it runs its program: the kernel sends it SIGTERM when the
    process that started it dies, however it dies (kill -9 included). Linux only; elsewhere
    Ctrl-C, SIGTERM and SIGHUP still stop every role."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def program(name: str) -> str:
    """A program from this environment's bin/ (lifeboat, mlflow), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise LifeboatError(f"{name} is not installed: `make cluster` installs it "
                            "(apt-get install haproxy prometheus; pip install -e '.[dev]')")
    return found
