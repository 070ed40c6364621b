"""The one logging setup: Rich on a terminal, plain lines elsewhere."""

from __future__ import annotations

import logging
import os
import sys

_NOISY = ("alembic", "mlflow", "urllib3", "git", "httpx")
# MLflow's records go through this setup like every library's, instead of a handler of its
# own that it would install at import.
os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")


def configure_logging(level: str = "INFO") -> None:
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

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


def silence_mlflow_events() -> None:
    """MLflow prints its events ("Successfully registered model", "Created version ...")
    straight to stderr, outside logging: they broke into `lifeboat up`'s own lines. Its
    warnings and errors still come through its loggers."""
    from mlflow.utils.logging_utils import disable_logging

    disable_logging()
