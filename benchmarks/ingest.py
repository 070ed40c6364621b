"""Ingestion throughput: generated passengers, validated and loaded into PostgreSQL and SQLite.

Each load runs in a fresh process, so its peak RSS is its own. The file has 1% injected
errors, so validation has real work to do; both databases load the same file.

    python -m benchmarks.ingest [--rows N | --quick | --smoke] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import make_url

from benchmarks import _smoke
from lifeboat.synthetic.passengers import inject_errors, synthetic_passengers, write_passengers

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET_SECONDS, TARGET_RSS_MB = 10.0, 1024.0
QUICK_ROWS, SMOKE_ROWS = 100_000, 2_000

_LOAD = """
import json, sys, time
from lifeboat.datasets import load_spec
from lifeboat.db import Database, upgrade
from lifeboat.ingest import LandingZone, ingest_file
url, source, landing = sys.argv[1:4]
database = Database(url)
upgrade(database)
started = time.perf_counter()
report = ingest_file(database, load_spec("titanic"), source, LandingZone(landing))
print(json.dumps({"seconds": time.perf_counter() - started, "loaded": report.rows_loaded,
                  "rejected": report.rows_rejected}))
"""


def main(argv: list[str] | None = None) -> int:
    args, _ = arguments("python -m benchmarks.ingest", __doc__).parse_known_args(argv)
    rows = row_count(args)
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as scratch:
        source = Path(scratch) / "passengers.csv"
        started = time.perf_counter()
        passengers, _ = inject_errors(synthetic_passengers(rows, seed=7), rate=0.01, seed=7)
        write_passengers(passengers, source)
        print(f"generated {rows:,} rows ({source.stat().st_size / 1e6:.0f} MB CSV) "
              f"in {time.perf_counter() - started:.1f} s")
        with scratch_postgres(args.postgres) as postgres_url:
            results = {
                "postgres": _load(postgres_url, source, Path(scratch) / "landing-pg"),
                "sqlite": _load(f"sqlite:///{Path(scratch) / 'bench.db'}", source,
                                Path(scratch) / "landing-sqlite"),
            }
    print(f"{'database':<10} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12} {'loaded':>9} {'rejected':>9}")
    for name, result in results.items():
        print(f"{name:<10} {result['seconds']:>8.2f} {rows / result['seconds']:>10,.0f} "
              f"{result['rss_mb']:>12.0f} {result['loaded']:>9,} {result['rejected']:>9,}")
    postgres = results["postgres"]
    if rows == 1_000_000:
        met = postgres["seconds"] <= TARGET_SECONDS and postgres["rss_mb"] <= TARGET_RSS_MB
        print(f"target (PostgreSQL, 1M rows): <= {TARGET_SECONDS:.0f} s and "
              f"<= {TARGET_RSS_MB:.0f} MB: {'met' if met else 'missed'}")
    return 0


def _load(url: str, source: Path, landing: Path) -> dict:
    process = subprocess.Popen([sys.executable, "-c", _LOAD, url, str(source), str(landing)],
                               stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    output = process.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"load into {url} failed")
    return {**json.loads(output.strip().splitlines()[-1]), "rss_mb": usage.ru_maxrss / 1024}


@contextmanager
def scratch_postgres(url: str) -> Iterator[str]:
    """A throwaway database on the server, so the benchmark never touches real data."""
    server, name = make_url(url), f"lifeboat_bench_{uuid.uuid4().hex[:8]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def arguments(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The options every million-row benchmark takes."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=os.environ.get("LIFEBOAT_TEST_POSTGRES_URL",
                                                             DEFAULT_POSTGRES))
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows")
    _smoke.add_flag(parser)
    return parser


def row_count(args: argparse.Namespace) -> int:
    """The passengers to generate: --smoke's few, --quick's 100,000 or --rows."""
    return _smoke.pick(args, args.rows, QUICK_ROWS, SMOKE_ROWS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
