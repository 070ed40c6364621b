"""The one logging setup: Rich on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
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


class _MlflowEvents(io.TextIOBase):
    """What MLflow prints as events, as debug records of its logger."""

    def write(self, text: str) -> int:
        if text.strip():
            logging.getLogger("mlflow").debug(text.strip())
        return len(text)


def route_mlflow_events() -> None:
    """MLflow prints its events ("Successfully registered model", "Created version ...")
    straight to stderr, outside logging, and turns that stream back on after its own
    quiet sections: they broke into `lifeboat up`'s lines. Its `eprint` looks the stream up
    at each call, so each event becomes a debug record of the `mlflow` logger, which this
    setup keeps at WARNING and above."""
    from mlflow.utils import logging_utils

    logging_utils.MLFLOW_LOGGING_STREAM = _MlflowEvents()
