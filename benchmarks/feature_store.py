"""Online feature store: write throughput and lookup latency, on Redis, on a Redis Cluster
and on embedded SQLite.

Vectors of the shipped feature view (17 values: 10 numbers, 7 strings) computed for generated
passengers, keyed by their entity ids. Lookups of 1 and of 100 random ids are timed through
each store's `read`, the stores taking turns, and, on the same Redis keys, the naive way: one
GET per id in a Python loop, each value JSON-decoded. The cluster is started here: three
masters with a replica each, six redis-server processes on loopback, stopped at the end.
Then the whole materialization: the passengers ingested into a scratch PostgreSQL DB,
`materialize` into Redis. The benchmark's keys are deleted afterwards.

    python -m benchmarks.feature_store [--rows N | --quick | --smoke] [--lookups N]
        [--redis URL]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import redis

from benchmarks.ingest import arguments, row_count, scratch_postgres
from lifeboat.datasets import load_spec
from lifeboat.db import Database, upgrade
from lifeboat.features import feature_view, materialize
from lifeboat.features.online import OnlineStore, ViewKey, open_online_store
from lifeboat.features.online.redis import entity_keys
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.synthetic.passengers import synthetic_passengers, write_passengers
from lifeboat.validation import derived_entity_ids
from tests.support.redis_cluster import RedisCluster

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
TARGET_P99_US = {1: 1_000, 100: 2_000}  # the Redis store's lookups (the targets)
BATCH_SIZES = (1, 100)
ROUNDS, WARM_UP = 4, 20
SMOKE_LOOKUPS = 200

Lookup = Callable[[list[str]], object]


def main(argv: list[str] | None = None) -> int:
    args, _ = _arguments().parse_known_args(argv)
    rows = row_count(args)
    lookup_count = SMOKE_LOOKUPS if args.smoke else args.lookups
    started = time.perf_counter()
    people = synthetic_passengers(rows, seed=7)
    ids = derived_entity_ids(load_spec("titanic"), people).tolist()
    frame = feature_frame(people)
    del people
    print(f"generated {rows:,} vectors of {frame.shape[1]} values "
          f"in {time.perf_counter() - started:.1f} s")
    key = ViewKey(f"bench{uuid.uuid4().hex[:8]}", "passenger", "v1")
    naive = redis.Redis.from_url(args.redis)
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as scratch:
        cluster = RedisCluster(Path(scratch) / "cluster").start()
        stores = {"redis store": open_online_store(args.redis),
                  "cluster store": open_online_store(cluster.url),
                  "embedded store": open_online_store(f"sqlite:///{Path(scratch) / 'online.db'}")}
        try:
            _print_writes({name: time_write(store, key, list(frame.columns), ids, _rows(frame))
                           for name, store in stores.items()}, rows)
            lookups = {name: _store_lookup(store, key) for name, store in stores.items()}
            lookups["naive GET loop"] = _naive_lookup(naive, key)
            _print_latencies(_time_lookups(lookups, ids, lookup_count), lookup_count, rows)
        finally:
            for store in stores.values():
                store.close()
            cluster.stop()
            _delete_keys(naive, key)
            naive.close()
    time_materialize(rows, args.postgres, args.materialize_redis)
    return 0


def feature_frame(people: pd.DataFrame) -> pd.DataFrame:
    """The shipped feature view (`passenger_profile`) computed for the generated passengers."""
    return feature_view(load_spec("titanic")).from_records(people)


def time_materialize(rows: int, postgres: str, redis_url: str) -> None:
    """The whole path: ingest into a scratch PostgreSQL DB, then `materialize` into Redis."""
    spec = load_spec("titanic")
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as scratch, \
            scratch_postgres(postgres) as url:
        source = Path(scratch) / "passengers.csv"
        write_passengers(synthetic_passengers(rows, seed=11), source)
        database = Database(url)
        upgrade(database)
        ingest_file(database, spec, str(source), LandingZone(str(Path(scratch) / "landing")))
        store = open_online_store(redis_url)
        started, cpu = time.perf_counter(), time.process_time()
        report = materialize(database, spec, store)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        store.close()
        database.dispose()
    client = redis.Redis.from_url(redis_url)
    _delete_keys(client, feature_view(spec).key)
    client.close()
    # The CPU figure holds on a busy machine, where the time alone says little.
    print(f"materialize {report.computed:,} passengers (offline table in PostgreSQL + Redis): "
          f"{seconds:.1f} s, {report.computed / seconds:,.0f} entities/s "
          f"({cpu:.1f} s of this process's CPU)")


def time_write(store: OnlineStore, key: ViewKey, columns: Sequence[str],
               ids: Sequence[str], rows: Iterable[Sequence[object]]) -> float:
    """Seconds to write `rows` (one per id) into `store` under `key`."""
    started = time.perf_counter()
    written = store.write(key, columns, ids, rows)
    seconds = time.perf_counter() - started
    if written != len(ids):
        raise SystemExit(f"{store.url} wrote {written:,} of {len(ids):,} vectors")
    return seconds


def _rows(frame: pd.DataFrame) -> Iterable[tuple]:
    return frame.itertuples(index=False, name=None)


def _store_lookup(store: OnlineStore, key: ViewKey) -> Lookup:
    return lambda ids: store.read(key, ids)


def _naive_lookup(client: redis.Redis, key: ViewKey) -> Lookup:
    """What the seeds did: a GET per id, one round trip each."""
    def lookup(ids: list[str]) -> list:
        values = [client.get(name) for name in entity_keys(key, ids)]
        return [None if value is None else json.loads(value) for value in values]
    return lookup


def _time_lookups(lookups: dict[str, Lookup], ids: list[str],
                  count: int) -> dict[tuple[str, int], np.ndarray]:
    """Microseconds per lookup, for each approach and batch size, of random ids.

    In rounds: each approach looks up a block of ids per round, so each is timed in a steady
    state, and a slow spell on the machine falls on all of them alike.
    """
    draw = random.Random(7)
    timings: dict[tuple[str, int], list[int]] = {}
    for size in BATCH_SIZES:
        wanted = [draw.sample(ids, size) for _ in range(count)]
        for round_ in range(ROUNDS):
            block = wanted[round_::ROUNDS]
            for name, lookup in lookups.items():
                timings.setdefault((name, size), []).extend(_timed(name, lookup, block))
    return {case: np.array(spent) / 1_000 for case, spent in timings.items()}


def _timed(name: str, lookup: Lookup, block: list[list[str]]) -> list[int]:
    """Nanoseconds per lookup, after a few untimed ones that warm connections and caches."""
    for entity_ids in block[:WARM_UP]:
        if None in lookup(entity_ids):
            raise SystemExit(f"{name} lost a vector")
    spent = []
    for entity_ids in block:
        started = time.perf_counter_ns()
        lookup(entity_ids)
        spent.append(time.perf_counter_ns() - started)
    return spent


def _print_writes(seconds: dict[str, float], rows: int) -> None:
    print(f"{'write':<22} {'seconds':>8} {'vectors/s':>10}")
    for name, spent in seconds.items():
        print(f"{name:<22} {spent:>8.2f} {rows / spent:>10,.0f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the benchmark (generated frame included): {peak_mb:,.0f} MB")


def _print_latencies(micros: dict[tuple[str, int], np.ndarray], count: int, rows: int) -> None:
    print(f"lookup latency in µs, {count:,} lookups of random ids among {rows:,} per cell")
    print(f"{'approach':<22}" + "".join(f" {f'{size} id p50':>11} {f'{size} id p99':>11}"
                                        for size in BATCH_SIZES))
    names = dict.fromkeys(name for name, _ in micros)
    quantiles = {case: np.percentile(spent, [50, 99]) for case, spent in micros.items()}
    for name in names:
        print(f"{name:<22}" + "".join(f" {value:>11,.0f}" for size in BATCH_SIZES
                                      for value in quantiles[name, size]))
    for store in ("redis store", "embedded store"):
        print(f"{'naive / ' + store:<22}" + "".join(
            f" {naive / value:>10.1f}x" for size in BATCH_SIZES
            for naive, value in zip(quantiles["naive GET loop", size], quantiles[store, size])))
    verdicts = [f"{size} id p99 <= {target:,} µs: "
                f"{'met' if quantiles['redis store', size][1] <= target else 'missed'}"
                for size, target in TARGET_P99_US.items()]
    print("target (redis store): " + "; ".join(verdicts))


def _delete_keys(client: redis.Redis, key: ViewKey) -> None:
    """SCAN + UNLINK of everything under the benchmark's own dataset name."""
    batch: list[bytes] = []
    for name in client.scan_iter(f"*{key.dataset}:*", count=10_000):
        batch.append(name)
        if len(batch) == 10_000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


def _arguments() -> argparse.ArgumentParser:
    parser = arguments("python -m benchmarks.feature_store", __doc__)
    parser.add_argument("--materialize-redis", default="redis://127.0.0.1:6379/1",
                        help="a Redis DB of its own: these keys carry the real dataset name")
    parser.add_argument("--lookups", type=int, default=2_000,
                        help=f"timed lookups per cell ({SMOKE_LOOKUPS} with --smoke)")
    parser.add_argument("--redis", default=os.environ.get("LIFEBOAT_TEST_REDIS_URL",
                                                          DEFAULT_REDIS))
    return parser


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
