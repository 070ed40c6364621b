"""The spark engine beside the local one on this machine: batch scoring with logging of
generated passengers at several sizes, and the customers' point-in-time aggregates of
generated transactions.

The Spark side is a standalone cluster of two workers with one core each, started from
PySpark's own launch scripts as the tests start it; the local side is `score_file` in this
process. Both have the machine's two cores (shared with PostgreSQL's server processes,
which take the prediction log's COPYs), so "per core" divides by two for each. At each size
the engines run by turns, local first, the prediction log emptied before each run so that
every run logs every row; the Spark session is started, and each engine scores the bundled
file once, before the first turn, both timed on their own. The model is trained on the bundled 1309 rows; the input is one Parquet
file in row groups of 100,000 rows, scored by the spark engine in parts of `ROWS_PER_TASK`.

The aggregates are those of the customers spec, over generated transactions (ten million by
default, cached as benchmarks.aggregation caches them), at one cut-off (what materialization
computes) and at the training cut-offs: the local engine's `point_in_time` on frames already
in memory, the spark engine's `point_in_time_on_spark` from the Parquet files (its read
included) to Spark's no-op sink, by turns, medians of the turns.

    python -m benchmarks.spark_engine [--rows N[,N...] | --quick | --smoke] [--turns N]
        [--transactions N] [--customers N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import make_url

from benchmarks import _smoke
from benchmarks.aggregation import CACHE, cached_data
from benchmarks.ingest import DEFAULT_POSTGRES, scratch_postgres
from lifeboat.datasets import load_spec
from lifeboat.db import Database
from lifeboat.features.aggregates import cutoff_times, point_in_time
from lifeboat.files import content_checksum
from lifeboat.scoring import score_file
from lifeboat.spark import point_in_time_on_spark, score_on_spark, spark_session, stop_spark
from lifeboat.spark.aggregates import POSITION
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
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true",
                        help="1,000,000 rows, 1,000,000 transactions")
    parser.add_argument("--postgres", default=os.environ.get("LIFEBOAT_TEST_POSTGRES_URL",
                                                             DEFAULT_POSTGRES))
    _smoke.add_flag(parser)
    args = parser.parse_args(argv)
    sizes = _smoke.pick(args, [int(rows) for rows in args.rows.split(",")], [1_000_000], [5_000])
    customers, transactions = _smoke.pick(args, (args.customers, args.transactions),
                                          (20_000, 1_000_000), (500, 20_000))
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
            aggregated = _aggregation(settings, folder, customers, transactions, args.turns,
                                      args.smoke)
        finally:
            stop_spark()
            cluster.stop()
    _print(results)
    _print_aggregation(aggregated)
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


def _aggregation(settings, folder: Path, customers: int, transactions: int, turns: int,  # noqa: ANN001
                 smoke: bool) -> dict:
    spec = load_spec("customers")
    data = cached_data(spec, customers, transactions, seed=0,
                       cache=folder if smoke else CACHE)
    entities = pd.read_parquet(data / "customers.parquet")
    events = pd.read_parquet(data / "transactions.parquet")
    events[POSITION] = np.arange(len(events))  # ties in time go by place, as in the table
    pq.write_table(pa.Table.from_pandas(events, preserve_index=False),
                   folder / "positioned.parquet", row_group_size=1_000_000)
    spark = spark_session(settings)
    newest = events["timestamp"].max()
    cut = {"1 cut-off": [newest], "training cut-offs": cutoff_times(spec, newest)}
    timings: dict[tuple[str, str], list[float]] = {}
    for _ in range(turns):
        for name, cutoffs in cut.items():
            started = time.perf_counter()
            rows = len(point_in_time(spec, entities, events, cutoffs))
            timings.setdefault((name, "local"), []).append(time.perf_counter() - started)
            started = time.perf_counter()
            frame = point_in_time_on_spark(
                spec, spark.read.parquet(str(data / "customers.parquet")),
                spark.read.parquet(str(folder / "positioned.parquet")), cutoffs)
            frame.write.format("noop").mode("overwrite").save()
            timings.setdefault((name, "spark"), []).append(time.perf_counter() - started)
            print(f"{len(events):>12,} transactions, {name}: {rows:,} rows; local "
                  f"{timings[name, 'local'][-1]:.1f} s, spark {timings[name, 'spark'][-1]:.1f} s")
    return {"transactions": len(events), "customers": len(entities),
            **{key: statistics.median(seconds) for key, seconds in timings.items()}}


def _print_aggregation(result: dict) -> None:
    events = result["transactions"]
    print()
    print(f"point-in-time aggregates of {events:,} transactions ({result['customers']:,} "
          f"customers), medians; per core = transactions/s / {CORES}")
    print(f"{'cut-offs':<18} {'local s':>9} {'spark s':>9} {'local tx/s/core':>16} "
          f"{'spark tx/s/core':>16} {'spark/local time':>17}")
    for name in ("1 cut-off", "training cut-offs"):
        local, spark = result[name, "local"], result[name, "spark"]
        print(f"{name:<18} {local:>9.1f} {spark:>9.1f} {events / local / CORES:>16,.0f} "
              f"{events / spark / CORES:>16,.0f} {spark / local:>16.2f}x")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
