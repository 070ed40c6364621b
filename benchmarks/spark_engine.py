"""The spark engine beside the local one on this machine: batch scoring with logging of
generated passengers, at several sizes.

The Spark side is a standalone cluster of two workers with one core each, started from
PySpark's own launch scripts as the tests start it; the local side is `score_file` in this
process. Both have the machine's two cores (shared with PostgreSQL's server processes,
which take the prediction log's COPYs), so "per core" divides by two for each. At each size
the engines run by turns, local first, the prediction log emptied before each run so that
every run logs every row; the Spark session is started, and each engine scores the bundled
file once, before the first turn, both timed on their own. The model is trained on the bundled 1309 rows; the input is one Parquet
file in row groups of 100,000 rows, scored by the spark engine in parts of `ROWS_PER_TASK`.

    python -m benchmarks.spark_engine [--rows N[,N...] | --quick | --smoke] [--turns N]
        [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import make_url

from benchmarks import _smoke
from benchmarks.ingest import DEFAULT_POSTGRES, scratch_postgres
from lifeboat.datasets import load_spec
from lifeboat.db import Database
from lifeboat.files import content_checksum
from lifeboat.scoring import score_file
from lifeboat.spark import score_on_spark, spark_session, stop_spark
from lifeboat.spark.scoring import ROWS_PER_TASK
from lifeboat.synthetic.passengers import synthetic_passengers
from tests.support.homes import trained_home
from tests.support.spark_cluster import SparkCluster

CORES = 2
GENERATED_AT_ONCE = 1_000_000
ROW_GROUP = 100_000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.spark_engine", description=__doc__)
    parser.add_argument("--rows", default="1000000,3000000,10000000",
                        help="comma-separated sizes")
    parser.add_argument("--turns", type=int, default=1, help="runs of each engine per size")
    parser.add_argument("--quick", action="store_true", help="1,000,000 rows")
    parser.add_argument("--postgres", default=os.environ.get("LIFEBOAT_TEST_POSTGRES_URL",
                                                             DEFAULT_POSTGRES))
    _smoke.add_flag(parser)
    args = parser.parse_args(argv)
    sizes = _smoke.pick(args, [int(rows) for rows in args.rows.split(",")], [1_000_000], [5_000])
    spec = load_spec("titanic")
    with (tempfile.TemporaryDirectory(prefix="lifeboat-spark-bench-") as scratch,
          scratch_postgres(args.postgres) as url):
        folder = Path(scratch)
        settings = trained_home(folder / "home", spec, url)
        cluster = SparkCluster(folder / "cluster").start(workers=2)
        try:
            settings = settings.model_copy(update={"spark_master": cluster.master_url})
            started = time.perf_counter()
            spark_session(settings)
            print(f"spark session on the 2-worker cluster: started in "
                  f"{time.perf_counter() - started:.1f} s")
            _warm_up(settings, spec, url, folder)
            results = [_size(settings, spec, url, folder, rows, args.turns) for rows in sizes]
        finally:
            stop_spark()
            cluster.stop()
    _print(results)
    return 0


def _size(settings, spec, url: str, folder: Path, rows: int, turns: int) -> dict:  # noqa: ANN001
    source = _passengers(folder / f"passengers-{rows}.parquet", rows)
    started = time.perf_counter()
    content_checksum(str(source))
    checksum_seconds = time.perf_counter() - started
    database = Database(url)
    timings: dict[str, list[float]] = {"local": [], "spark": []}
    for turn in range(turns):
        for engine in ("local", "spark"):
            _empty_log(url)
            output = folder / f"out-{engine}-{rows}-{turn}"
            started = time.perf_counter()
            if engine == "local":
                report = score_file(settings, database, spec, str(source), f"{output}.parquet")
            else:
                report = score_on_spark(settings, database, spec, str(source), str(output))
            timings[engine].append(time.perf_counter() - started)
            assert report.rows == report.logged == rows, report
            print(f"{rows:>12,} rows  {engine:5}  turn {turn + 1}: {timings[engine][-1]:7.1f} s")
    database.dispose()
    source.unlink()
    return {"rows": rows, "checksum": checksum_seconds, **{
        engine: statistics.median(seconds) for engine, seconds in timings.items()}}


def _warm_up(settings, spec, url: str, folder: Path) -> None:  # noqa: ANN001
    """Each engine scores the bundled file once, untimed: the executors' Python workers then
    have Lifeboat imported and the scorer loaded, as this process has for the local engine."""
    database = Database(url)
    started = time.perf_counter()
    score_on_spark(settings, database, spec, str(spec.bundled_path()), str(folder / "warm"))
    print(f"spark executors warmed up (imports, scorer) in {time.perf_counter() - started:.1f} s")
    score_file(settings, database, spec, str(spec.bundled_path()), str(folder / "warm.csv"))
    database.dispose()


def _passengers(path: Path, rows: int) -> Path:
    """Generated passengers as the titanic3 file spells them, every column as text, made a
    million at a time (each with a seed of its own) so that ten million fit in memory."""
    with pq.ParquetWriter(path, _schema()) as writer:
        for start in range(0, rows, GENERATED_AT_ONCE):
            frame = synthetic_passengers(min(GENERATED_AT_ONCE, rows - start), seed=start)
            frame = frame.astype(str).replace({"nan": "", "<NA>": ""})
            writer.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                               row_group_size=ROW_GROUP)
    return path


def _schema() -> pa.Schema:
    sample = synthetic_passengers(10, seed=0).astype(str)
    return pa.Table.from_pandas(sample, preserve_index=False).schema


def _empty_log(url: str) -> None:
    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute("TRUNCATE predictions CASCADE")


def _print(results: list[dict]) -> None:
    print()
    print(f"batch scoring with logging (PostgreSQL), medians; per core = rows/s / {CORES}; "
          f"spark parts of {ROWS_PER_TASK:,} rows")
    print(f"{'rows':>12} {'local s':>9} {'spark s':>9} {'local rows/s/core':>18} "
          f"{'spark rows/s/core':>18} {'spark/local time':>17} {'checksum s':>11}")
    for result in results:
        rows, local, spark = result["rows"], result["local"], result["spark"]
        print(f"{rows:>12,} {local:>9.1f} {spark:>9.1f} {rows / local / CORES:>18,.0f} "
              f"{rows / spark / CORES:>18,.0f} {spark / local:>16.2f}x "
              f"{result['checksum']:>11.1f}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
