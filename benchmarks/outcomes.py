"""Deriving outcomes: what one monitoring turn costs on a long prediction log.

A customers log of N predictions by entity over 90 days and N transactions of 10,000
customers over 120 days, in PostgreSQL and SQLite (built in SQL, so the benchmark times the
turns, not the load). Then: turns that each label the newest 5,000 predictions whose horizon
is over (reading their customers' events); once all of them are labelled, a turn with
nothing new, as the service runs every LIFEBOAT_DRIFT_CHECK_SECONDS, with the progress mark
and without it (an anti-join over the whole log, which the mark avoids); and the newest
transaction's time alone, which every turn reads.

    python -m benchmarks.outcomes [--rows N | --quick | --smoke] [--postgres URL]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, text

from benchmarks.ingest import arguments, row_count, scratch_postgres
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, OutcomeProgress, ensure_dataset_table, upgrade
from lifeboat.features import newest_event_loaded
from lifeboat.monitoring.outcomes import PER_TURN, derive_outcomes

CUSTOMERS = 10_000
REPEATS = 5
LABELLING_TURNS = 3
# A feature-view row as the log keeps it: about the size a customers prediction logs.
FEATURES = ('{"age": 41, "region": "west", "loyalty_points": 2210, "avg_completed_spend": '
            '118.42, "completed_count": 37, "days_since_last_purchase": 3.61, "last_amount": '
            '96.2, "max_completed_amount": 512.9, "total_refunded": 140.0, "spend_trend": '
            '-35.5, "tenure_days": 1402.3}')

_LOG = {  # N predictions over 90 days from 2026-01-01, N transactions over 120 days from December
    "postgresql": [
        """INSERT INTO predictions (id, created_at, dataset, source, entity_id, input, features,
             prediction, label, probability, model_name, model_version, latency_ms)
           SELECT 'p' || lpad(g::text, 10, '0'),
                  timestamptz '2026-01-01' + g * (7776000.0 / :rows) * interval '1 second',
                  'customers', 'batch', 'C' || lpad((g % :customers)::text, 7, '0'),
                  '{}'::json, CAST(:features AS json), 0, 'no', 0.3, 'm', '1', 1.0
           FROM generate_series(1, :rows) g""",
        """INSERT INTO transactions (transaction_id, customer_id, amount, currency, timestamp,
             payment_method, status)
           SELECT 'T' || g, 'C' || lpad((g % :customers)::text, 7, '0'),
                  (g::bigint * 7919) % 1000, 'USD',
                  timestamptz '2025-12-01' + g * (10368000.0 / :rows) * interval '1 second',
                  'card', CASE WHEN g % 10 = 0 THEN 'refunded' ELSE 'completed' END
           FROM generate_series(1, :rows) g""",
    ],
    "sqlite": [
        """WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :rows)
           INSERT INTO predictions (id, created_at, dataset, source, entity_id, input, features,
             prediction, label, probability, model_name, model_version, latency_ms)
           SELECT printf('p%010d', n),
                  strftime('%Y-%m-%d %H:%M:%f000', '2026-01-01',
                           '+' || (n * 7776000.0 / :rows) || ' seconds'),
                  'customers', 'batch', printf('C%07d', n % :customers), '{}', :features, 0,
                  'no', 0.3, 'm', '1', 1.0
           FROM g""",
        """WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :rows)
           INSERT INTO transactions (transaction_id, customer_id, amount, currency, timestamp,
             payment_method, status)
           SELECT 'T' || n, printf('C%07d', n % :customers), (n * 7919) % 1000, 'USD',
                  strftime('%Y-%m-%d %H:%M:%f000', '2025-12-01',
                           '+' || (n * 10368000.0 / :rows) || ' seconds'),
                  'card', CASE WHEN n % 10 = 0 THEN 'refunded' ELSE 'completed' END
           FROM g""",
    ],
}


def main(argv: list[str] | None = None) -> int:
    args, _ = arguments("python -m benchmarks.outcomes", __doc__).parse_known_args(argv)
    rows = row_count(args)
    spec = load_spec("customers")
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as scratch, \
            scratch_postgres(args.postgres) as postgres_url:
        results = {name: _measure(Database(url), spec, rows) for name, url in (
            ("postgres", postgres_url), ("sqlite", f"sqlite:///{Path(scratch) / 'bench.db'}"))}
    print(f"\nOne turn on {rows:,} logged predictions and {rows:,} transactions (medians)")
    print(f"{'database':<10} {f'{PER_TURN:,} labelled s':>18} {'nothing new ms':>15} "
          f"{'nothing new, whole log ms':>26} {'newest event ms':>16}")
    for name, result in results.items():
        print(f"{name:<10} {result['labelling']:>18.2f} {result['steady'] * 1000:>15.0f} "
              f"{result['whole_log'] * 1000:>26.0f} {result['newest'] * 1000:>16.0f}")
    return 0


def _measure(database: Database, spec: DatasetSpec, rows: int) -> dict[str, float]:
    try:
        _build_log(database, spec, rows)
        newest = _median(lambda: newest_event_loaded(database, spec))
        labelling = statistics.median(
            _seconds(lambda: derive_outcomes(database, spec)) for _ in range(LABELLING_TURNS))
        _label_the_rest(database, spec)
        steady = _median(lambda: derive_outcomes(database, spec))
        whole_log = _median(lambda: derive_outcomes(database, spec),
                            before=lambda: _forget_progress(database))
        return {"labelling": labelling, "steady": steady, "whole_log": whole_log,
                "newest": newest}
    finally:
        database.dispose()


def _build_log(database: Database, spec: DatasetSpec, rows: int) -> None:
    upgrade(database)
    ensure_dataset_table(database.engine, spec.events)
    dialect = database.engine.dialect.name
    with database.engine.begin() as connection:
        for statement in _LOG[dialect]:
            connection.execute(text(statement), {"rows": rows, "customers": CUSTOMERS,
                                                 "features": FEATURES})
    _analyze(database)


def _label_the_rest(database: Database, spec: DatasetSpec) -> None:
    """Every prediction whose horizon is over gets an outcome, and a turn sets the mark."""
    decided = newest_event_loaded(database, spec) - timedelta(days=spec.label.horizon_days)
    with database.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO feedback (prediction_id, actual, received_at, source) SELECT id, 0, "
            "CURRENT_TIMESTAMP, 'derived' FROM predictions p WHERE created_at <= :decided AND "
            "NOT EXISTS (SELECT 1 FROM feedback f WHERE f.prediction_id = p.id)"),
            {"decided": decided})
    _analyze(database)
    derive_outcomes(database, spec)


def _forget_progress(database: Database) -> None:
    with database.session() as session:
        session.execute(delete(OutcomeProgress))


def _analyze(database: Database) -> None:
    """Fresh statistics (and visibility map) on PostgreSQL, as autovacuum would leave them."""
    if database.engine.dialect.name == "postgresql":
        with database.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))


def _median(call: Callable[[], object], before: Callable[[], object] = lambda: None) -> float:
    """The median time of REPEATS calls, each after `before` (untimed)."""
    times = []
    for _ in range(REPEATS):
        before()
        times.append(_seconds(call))
    return statistics.median(times)


def _seconds(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
