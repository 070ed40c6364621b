"""Who holds a claim row (a running ingestion, job run or file being scored), and whether
that process is gone: a claim left by a killed process must not block the work forever."""

from __future__ import annotations

import os
import socket


def this_process() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


def holder_is_gone(host: str | None, pid: int | None) -> bool:
    """True only when the holder ran on this host and its process no longer exists; a
    claim from another host cannot be checked from here."""
    if host != socket.gethostname() or pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # someone else's process holds that pid
    return False
