"""The one logging setup: Rich on a terminal, plain lines elsewhere."""

from __future__ import annotations

import logging
import sys

from rich.logging import RichHandler

_NOISY = ("alembic", "mlflow", "urllib3", "git", "httpx")


def configure_logging(level: str = "INFO") -> None:
    handler: logging.Handler
    if sys.stderr.isatty():
        handler = RichHandler(show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler()
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
