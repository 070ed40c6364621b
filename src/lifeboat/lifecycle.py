"""Stopping cleanly: a process Lifeboat starts never outlives the process that started it."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from types import FrameType


def exit_with_parent() -> None:
    """In a process started by `multiprocessing` (the embedded jobs, uvicorn's workers):
    sends SIGTERM to itself once its parent is gone, however the parent died (kill -9
    included, which runs no handler that could stop the children). The parent's sentinel
    is a pipe whose writing end only the parent holds: it reads as ready at its death."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="lifeboat-parent-watch", daemon=True).start()


def stop_on_hangup_and_terminate() -> None:
    """SIGTERM and SIGHUP (a closed terminal) end the process as Ctrl-C does: by unwinding,
    so `finally` blocks stop its children. While uvicorn serves, it takes SIGTERM over for
    a graceful shutdown and raises it again when done, which lands here; SIGHUP, which it
    leaves alone, is turned into SIGTERM to get the same graceful shutdown."""
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: signal.raise_signal(signal.SIGTERM))


def stop_child(process: multiprocessing.Process, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds; waits for it."""
    if process.is_alive():
        process.terminate()
        process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    sys.exit(0)
