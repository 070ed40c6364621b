"""The Spark session the spark engine's jobs run in: one per process, on the configured master.

Executors run Lifeboat's own code (the reader, the compiled scorer, the validator), so their
Python must have Lifeboat installed: on this machine the driver's own interpreter, on a
cluster the same environment shipped to every node. Spark's own settings (executor memory,
speculation, event logs) come from spark-defaults.conf or `PYSPARK_SUBMIT_ARGS`, as for any
PySpark application.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lifeboat.config import Settings
from lifeboat.errors import EngineUnavailable

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

APP_NAME = "lifeboat"
# py4j, PySpark's bridge to the JVM, logs each connection it closes at INFO, down to the
# interpreter's exit, when the streams it would write to may be closed already.
logging.getLogger("py4j").setLevel(logging.WARNING)
_started: list[SparkSession] = []


def spark_session(settings: Settings) -> SparkSession:
    """The process's session on `settings.spark_master`, started on first use."""
    if not _on_this_machine(settings.spark_master) and settings.db_url.startswith("sqlite"):
        raise EngineUnavailable(
            f"the spark engine's executors on {settings.spark_master} write to the database, "
            "and a SQLite file is on this machine only: set DATABASE_URL to a database server "
            "they reach (PostgreSQL)")
    try:
        from pyspark.errors import PySparkRuntimeError
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise EngineUnavailable("the spark engine needs PySpark: pip install 'lifeboat[spark]' "
                                f"({exc})") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        session = (SparkSession.builder.master(settings.spark_master).appName(APP_NAME)
                   .config("spark.sql.session.timeZone", "UTC")
                   .getOrCreate())
    except (PySparkRuntimeError, OSError) as exc:
        raise EngineUnavailable(f"cannot start Spark on {settings.spark_master} ({exc}); it "
                                "needs Java 17 (apt-get install openjdk-17-jre-headless)") from None
    _started[:] = [session]
    return session


def _on_this_machine(master: str) -> bool:
    """local[*], or a standalone master on loopback: executors that share this disk."""
    return master.startswith("local") or urlsplit(master).hostname in ("127.0.0.1", "localhost")


def stop_spark() -> None:
    """Stops the session `spark_session` started, if any: its JVM and executors go with it."""
    while _started:
        _started.pop().stop()
