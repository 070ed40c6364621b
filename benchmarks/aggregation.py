"""Point-in-time aggregation: the customers spec's aggregates and labels on generated
transactions (ten million by default), computed by pandas + NumPy (what ships, in
`lifeboat.features.aggregates`), Polars and DuckDB.

Every engine takes the same pandas frames, typed as they come out of the database, and
returns the same pandas frame, so conversions count. Before any timing, the three must agree
on a slice of the data (every value, every label). Each engine is then timed in its own
process (median of three runs; peak RSS measured from after loading, so it is the loaded
data plus what the engine needs): at one cut-off, as the stores and serving take it, and at
the training cut-offs with their labels. The generated data is cached as Parquet under
.bench-cache/, keyed by the generator's source, so a changed generator generates afresh
(a smoke run's few thousand are generated into a scratch folder and thrown away).

    python -m benchmarks.aggregation [--transactions N] [--customers N] [--quick | --smoke]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import _smoke
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.features.aggregates import CUTOFF, cutoff_times, future_labels, point_in_time
from lifeboat.synthetic import customers as customers_module
from lifeboat.synthetic.customers import generate_customers

TARGET_SECONDS = 20.0  # training cut-offs and labels, shipped engine, 10M transactions
REPEATS, SMOKE_REPEATS = 3, 1
QUICK_SIZE, SMOKE_SIZE = (20_000, 1_000_000), (500, 20_000)  # customers, transactions
CACHE = Path(__file__).resolve().parents[1] / ".bench-cache"
CHECK_CUSTOMERS = 20_000  # the slice the engines must agree on


def main(argv: list[str] | None = None) -> int:
    args, _ = _arguments().parse_known_args(argv)
    repeats = SMOKE_REPEATS if args.smoke else REPEATS
    if args.run_engine:
        return _run_engine(args.run_engine, Path(args.data), repeats)
    customers, transactions = _smoke.pick(args, (args.customers, args.transactions),
                                          QUICK_SIZE, SMOKE_SIZE)
    spec = load_spec("customers")
    with _cache(args.smoke) as cache:
        data = cached_data(spec, customers, transactions, args.seed, Path(cache))
        _check_engines(spec, data, customers, transactions)
        results = {engine: _timed_in_subprocess(engine, data, args.smoke) for engine in ENGINES}
    _print_table(results, repeats)
    if transactions == 10_000_000:
        seconds = results["pandas"]["training"]
        print(f"target (pandas, 10M transactions, training cut-offs + labels): "
              f"<= {TARGET_SECONDS:.0f} s: {'met' if seconds <= TARGET_SECONDS else 'missed'}")
    return 0


def _cache(smoke: bool) -> AbstractContextManager[str]:
    """The repository's cache, kept between runs; a smoke run's leaves nothing behind."""
    if smoke:
        return tempfile.TemporaryDirectory(prefix="lifeboat-bench-")
    return nullcontext(str(CACHE))


def cached_data(spec: DatasetSpec, customers: int, transactions: int, seed: int,
                cache: Path = CACHE) -> Path:
    """Generated customers and transactions, kept as ingestion would keep them, in Parquet.

    Transactions are written a month at a time, so generating ten million stays bounded."""
    generator = hashlib.sha256(Path(customers_module.__file__).read_bytes()).hexdigest()[:8]
    folder = cache / f"aggregation-{customers}-{transactions}-{seed}-{generator}"
    if (folder / "done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    table, months = generate_customers(customers, transactions, seed=seed)
    _clean_customers(spec, table).to_parquet(folder / "customers.parquet", index=False)
    writer = None
    for month in months:
        clean = pa.Table.from_pandas(_clean_transactions(spec, month), preserve_index=False)
        writer = writer or pq.ParquetWriter(folder / "transactions.parquet", clean.schema)
        writer.write_table(clean)
    if writer is not None:
        writer.close()
    (folder / "done").touch()
    print(f"generated {transactions:,} transactions in {time.perf_counter() - started:.1f} s")
    return folder


def _clean_customers(spec: DatasetSpec, table: pd.DataFrame) -> pd.DataFrame:
    """The rows ingestion loads, typed as the database hands them back."""
    age, region = spec.columns["age"], spec.columns["region"]
    keep = table["age"].between(age.min, age.max) & table["region"].isin(region.allowed)
    clean = table[keep].reset_index(drop=True)
    return clean.assign(age=clean["age"].astype("Int64"),
                        loyalty_points=clean["loyalty_points"].astype("Int64"),
                        signup_date=pd.to_datetime(clean["signup_date"], utc=True))


def _clean_transactions(spec: DatasetSpec, month: pd.DataFrame) -> pd.DataFrame:
    """The rules the dirty rows break: a time, a customer, an amount >= 0, a known status, and
    an id not seen before (a duplicate copies a row of its own month). Only the columns the
    aggregates and the label read are kept."""
    assert spec.events is not None
    time_ = pd.to_datetime(month["timestamp"], format="ISO8601", utc=True, errors="coerce")
    keep = (time_.notna() & month["customer_id"].notna() & (month["amount"] >= 0)
            & month["status"].isin(spec.events.columns["status"].allowed)
            & ~month["transaction_id"].duplicated())
    return pd.DataFrame({"customer_id": month["customer_id"][keep], "timestamp": time_[keep],
                         "amount": month["amount"][keep], "status": month["status"][keep]})


def _read(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (pd.read_parquet(folder / "customers.parquet"),
            pd.read_parquet(folder / "transactions.parquet"))


def _slice(spec: DatasetSpec, entities: pd.DataFrame, events: pd.DataFrame,
           customers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    kept = entities.iloc[::max(1, len(entities) // customers)]
    assert spec.events is not None
    return kept, events[events[spec.events.join_key].isin(kept[spec.entity.key])]


# --- the engines: each computes point_in_time + future_labels from the same pandas frames ---

Compute = Callable[[DatasetSpec, pd.DataFrame, pd.DataFrame, Sequence[pd.Timestamp], bool],
                   tuple[pd.DataFrame, pd.Series | None]]


def pandas_engine(spec: DatasetSpec, entities: pd.DataFrame, events: pd.DataFrame,
                  cutoffs: Sequence[pd.Timestamp], labelled: bool):
    frame = point_in_time(spec, entities, events, cutoffs)
    return frame, future_labels(spec, events, frame) if labelled else None


def polars_engine(spec: DatasetSpec, entities: pd.DataFrame, events: pd.DataFrame,
                  cutoffs: Sequence[pd.Timestamp], labelled: bool):
    """A group-by per cut-off over the events up to it; `last` relies on a stable time
    sort, since Polars keeps each group's rows in frame order."""
    import polars as pl

    source = spec.events
    assert source is not None
    key, join, at = spec.entity.key, source.join_key, source.time
    log = pl.from_pandas(events).sort(at, maintain_order=True)
    people = pl.from_pandas(entities)
    frames = []
    for cutoff in cutoffs:
        moment = pl.lit(cutoff.to_datetime64()).cast(log.schema[at])
        upto = log.filter(pl.col(at) <= moment)
        grouped = upto.group_by(join).agg(*(
            _polars_aggregate(pl, aggregate, at, moment).alias(name)
            for name, aggregate in spec.aggregates.items() if aggregate.function != "days_since"))
        alive = people.filter(pl.col(spec.entity.since) <= moment) if spec.entity.since \
            else people
        frame = alive.join(grouped, left_on=key, right_on=join, how="left")
        frame = frame.with_columns(moment.alias(CUTOFF), *(
            _polars_entity_aggregate(pl, name, aggregate, moment)
            for name, aggregate in spec.aggregates.items()))
        frames.append(frame)
    others = [name for name in entities.columns if name != key]
    result = pl.concat(frames).select(key, CUTOFF, *others, *spec.aggregates).to_pandas()
    if not labelled:
        return result, None
    return result, _polars_labels(pl, spec, log, result)


def _polars_aggregate(pl, aggregate, at: str, moment):
    keep = pl.col(at).is_not_null()
    for column, wanted in aggregate.where.items():
        keep &= pl.col(column).is_in([wanted] if isinstance(wanted, str) else wanted)
    window = None if aggregate.window_days is None else timedelta(days=aggregate.window_days)
    if window is not None and aggregate.function != "trend":
        keep &= pl.col(at) > moment - window
    values = pl.col(aggregate.column) if aggregate.column else None
    match aggregate.function:
        case "count":
            return keep.sum().cast(pl.Float64)
        case "sum":
            return values.filter(keep).sum()
        case "mean":
            return values.filter(keep).mean()
        case "min":
            return values.filter(keep).min()
        case "max":
            return values.filter(keep).max()
        case "last":
            return values.filter(keep).last()
        case "days_since_last":
            return (moment - pl.col(at).filter(keep).max()).dt.total_nanoseconds() / 86_400e9
        case "trend":
            recent = keep & (pl.col(at) > moment - window)
            before = keep & (pl.col(at) > moment - 2 * window) & (pl.col(at) <= moment - window)
            return values.filter(recent).sum() - values.filter(before).sum()
    raise ValueError(aggregate.function)


def _polars_entity_aggregate(pl, name: str, aggregate, moment):
    """After the join: tenure from the entity's own column; no events counts and sums 0."""
    if aggregate.function == "days_since":
        return ((moment - pl.col(aggregate.column)).dt.total_nanoseconds() / 86_400e9).alias(name)
    if aggregate.function in ("count", "sum", "trend"):
        return pl.col(name).fill_null(0.0).cast(pl.Float64)
    return pl.col(name).cast(pl.Float64)


def _polars_labels(pl, spec: DatasetSpec, log, frame: pd.DataFrame) -> pd.Series:
    label, source = spec.label, spec.events
    keep = pl.col(label.column) > label.above
    for column, wanted in label.where.items():
        keep &= pl.col(column).is_in([wanted] if isinstance(wanted, str) else wanted)
    horizon = timedelta(days=label.horizon_days)
    rows = pl.from_pandas(frame[[spec.entity.key, CUTOFF]])
    found = []
    for cutoff in frame[CUTOFF].unique():
        moment = pl.lit(cutoff.to_datetime64()).cast(log.schema[source.time])
        future = log.filter(keep & (pl.col(source.time) > moment)
                            & (pl.col(source.time) <= moment + horizon))
        found.append(future.select(pl.col(source.join_key).unique().alias(spec.entity.key))
                     .with_columns(moment.cast(rows.schema[CUTOFF]).alias(CUTOFF),
                                   pl.lit(1).alias("label")))
    labelled = rows.join(pl.concat(found), on=[spec.entity.key, CUTOFF], how="left",
                         maintain_order="left")
    return pd.Series(labelled["label"].fill_null(0).to_numpy(), index=frame.index)


def duckdb_engine(spec: DatasetSpec, entities: pd.DataFrame, events: pd.DataFrame,
                  cutoffs: Sequence[pd.Timestamp], labelled: bool):
    """One SQL statement: events joined to every cut-off at or after them, grouped by entity
    and cut-off, each aggregate a FILTERed aggregate. Ties in `last` go to the later row."""
    import duckdb

    source = spec.events
    assert source is not None
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")  # day intervals in UTC, as the other engines
    connection.register("events_arrow", pa.Table.from_pandas(events, preserve_index=False))
    connection.execute("CREATE TEMP VIEW log AS SELECT *, row_number() OVER () AS seq "
                       "FROM events_arrow")
    connection.register("entities", pa.Table.from_pandas(entities, preserve_index=False))
    moments = pd.to_datetime(list(cutoffs), utc=True).as_unit("us")  # DuckDB's TIMESTAMPTZ
    connection.register("cutoffs", pa.table({CUTOFF: pa.array(moments)}))
    result = connection.sql(_duckdb_query(spec, entities)).to_arrow_table().to_pandas()
    labels = None
    if labelled:
        rows = result[[spec.entity.key, CUTOFF]].assign(position=np.arange(len(result)))
        connection.register("frame", pa.Table.from_pandas(rows, preserve_index=False))
        found = connection.sql(_duckdb_label_query(spec)).to_arrow_table()
        labels = pd.Series(found["label"].to_numpy(), index=result.index)
    connection.close()
    return result, labels


def _duckdb_query(spec: DatasetSpec, entities: pd.DataFrame) -> str:
    source = spec.events
    key, join, at = _q(spec.entity.key), _q(source.join_key), _q(source.time)
    grouped = [f"{_duckdb_aggregate(aggregate, at)} AS {_q(name)}"
               for name, aggregate in spec.aggregates.items() if aggregate.function != "days_since"]
    selected = []
    for name, aggregate in spec.aggregates.items():
        if aggregate.function == "days_since":
            selected.append(f"(epoch_ns(c.{_q(CUTOFF)}) - epoch_ns(e.{_q(aggregate.column)})) "
                            f"/ 86400e9 AS {_q(name)}")
        elif aggregate.function in ("count", "sum", "trend"):
            selected.append(f"coalesce(a.{_q(name)}, 0)::DOUBLE AS {_q(name)}")
        else:
            selected.append(f"a.{_q(name)}::DOUBLE AS {_q(name)}")
    others = ", ".join(f"e.{_q(name)}" for name in entities.columns if name != spec.entity.key)
    alive = f"WHERE e.{_q(spec.entity.since)} <= c.{_q(CUTOFF)}" if spec.entity.since else ""
    return f"""
        WITH a AS (
            SELECT l.{join} AS entity, c.{_q(CUTOFF)} AS cutoff, {', '.join(grouped)}
            FROM log l JOIN cutoffs c ON l.{at} <= c.{_q(CUTOFF)}
            GROUP BY l.{join}, c.{_q(CUTOFF)})
        SELECT e.{key}, c.{_q(CUTOFF)}, {others}, {', '.join(selected)}
        FROM entities e CROSS JOIN cutoffs c
        LEFT JOIN a ON a.entity = e.{key} AND a.cutoff = c.{_q(CUTOFF)}
        {alive}
        ORDER BY c.{_q(CUTOFF)}, e.{key}"""


def _duckdb_aggregate(aggregate, at: str) -> str:
    keep = ["TRUE"]
    for column, wanted in aggregate.where.items():
        values = [wanted] if isinstance(wanted, str) else wanted
        keep.append(f"l.{_q(column)} IN ({', '.join(_literal(v) for v in values)})")
    window = aggregate.window_days
    if window is not None and aggregate.function != "trend":
        keep.append(f"l.{at} > c.{_q(CUTOFF)} - INTERVAL {window} DAY")
    where = " AND ".join(keep)
    value = f"l.{_q(aggregate.column)}" if aggregate.column else None
    match aggregate.function:
        case "count":
            return f"count(*) FILTER (WHERE {where})"
        case "sum" | "min" | "max":
            return f"{aggregate.function}({value}) FILTER (WHERE {where})"
        case "mean":
            return f"avg({value}) FILTER (WHERE {where})"
        case "last":
            return f"arg_max({value}, (l.{at}, l.seq)) FILTER (WHERE {where})"
        case "days_since_last":
            return (f"(epoch_ns(c.{_q(CUTOFF)}) - epoch_ns(max(l.{at}) FILTER (WHERE {where})))"
                    " / 86400e9")
        case "trend":
            recent = f"l.{at} > c.{_q(CUTOFF)} - INTERVAL {window} DAY"
            before = (f"l.{at} > c.{_q(CUTOFF)} - INTERVAL {2 * window} DAY AND "
                      f"l.{at} <= c.{_q(CUTOFF)} - INTERVAL {window} DAY")
            return (f"coalesce(sum({value}) FILTER (WHERE {where} AND {recent}), 0) - "
                    f"coalesce(sum({value}) FILTER (WHERE {where} AND {before}), 0)")
    raise ValueError(aggregate.function)


def _duckdb_label_query(spec: DatasetSpec) -> str:
    label, source = spec.label, spec.events
    at, join, key = _q(source.time), _q(source.join_key), _q(spec.entity.key)
    keep = [f"l.{_q(label.column)} > {label.above}"]
    for column, wanted in label.where.items():
        values = [wanted] if isinstance(wanted, str) else wanted
        keep.append(f"l.{_q(column)} IN ({', '.join(_literal(v) for v in values)})")
    return f"""
        WITH future AS (
            SELECT DISTINCT l.{join} AS entity, c.{_q(CUTOFF)} AS cutoff
            FROM log l JOIN (SELECT DISTINCT {_q(CUTOFF)} FROM frame) c
              ON l.{at} > c.{_q(CUTOFF)}
             AND l.{at} <= c.{_q(CUTOFF)} + INTERVAL {label.horizon_days} DAY
            WHERE {' AND '.join(keep)})
        SELECT (future.entity IS NOT NULL)::INTEGER AS label
        FROM frame f LEFT JOIN future
          ON future.entity = f.{key} AND future.cutoff = f.{_q(CUTOFF)}
        ORDER BY f.position"""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


ENGINES: dict[str, Compute] = {"pandas": pandas_engine, "polars": polars_engine,
                               "duckdb": duckdb_engine}


def check_engines_agree(spec: DatasetSpec, entities: pd.DataFrame, events: pd.DataFrame) -> None:
    """Every engine's rows, values and labels at the training cut-offs equal pandas' ones."""
    cutoffs = cutoff_times(spec, events[spec.events.time].max())
    expected = _comparable(spec, *pandas_engine(spec, entities, events, cutoffs, True))
    order = [spec.entity.key, CUTOFF]
    for name, engine in ENGINES.items():
        frame = _comparable(spec, *engine(spec, entities, events, cutoffs, True))
        if not frame[order].equals(expected[order]):
            raise SystemExit(f"{name} made other rows than pandas")
        for column in [*spec.aggregates, "label"]:
            np.testing.assert_allclose(frame[column].to_numpy(float),
                                       expected[column].to_numpy(float), rtol=1e-9, atol=1e-9,
                                       err_msg=f"{name}: {column}")


def _comparable(spec: DatasetSpec, frame: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """Rows in one order, keys as text and cut-offs in nanoseconds, whatever each engine
    hands back."""
    frame = frame.assign(label=labels.to_numpy())
    frame[spec.entity.key] = frame[spec.entity.key].astype(str)
    frame[CUTOFF] = pd.to_datetime(frame[CUTOFF], utc=True).dt.as_unit("ns")
    return frame.sort_values([spec.entity.key, CUTOFF], ignore_index=True)


def _check_engines(spec: DatasetSpec, data: Path, customers: int, transactions: int) -> None:
    """Before any timing, on a slice; the frames are dropped before the timed processes start."""
    entities, events = _read(data)
    check_engines_agree(spec, *_slice(spec, entities, events, CHECK_CUSTOMERS))
    print(f"engines agree on every value and label of {min(customers, CHECK_CUSTOMERS):,} "
          f"customers' transactions")
    print(f"{len(entities):,} customers, {len(events):,} transactions "
          f"(clean rows of {transactions:,} generated), cached in {data}")


def _timed_in_subprocess(engine: str, data: Path, smoke: bool) -> dict:
    command = [sys.executable, "-m", "benchmarks.aggregation", "--run-engine", engine,
               "--data", str(data), *(["--smoke"] if smoke else [])]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise SystemExit(f"the {engine} engine failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_engine(name: str, data: Path, repeats: int) -> int:
    """In the engine's own process: load, then time serving's and training's computations.

    Each case's peak RSS is measured from a reset after loading (Linux's clear_refs), so
    reading the Parquet files, the same for every engine, does not hide the engine's own."""
    spec = load_spec("customers")
    entities, events = _read(data)
    engine = ENGINES[name]
    newest = events[spec.events.time].max()
    cases = {"serving": ([newest], False), "training": (cutoff_times(spec, newest), True)}
    result = {"events": len(events), "loaded_mb": _memory_mb("VmRSS")}
    for case, (cutoffs, labelled) in cases.items():
        Path("/proc/self/clear_refs").write_text("5")
        spent = []
        for _ in range(repeats):
            started = time.perf_counter()
            engine(spec, entities, events, cutoffs, labelled)
            spent.append(time.perf_counter() - started)
        result[case] = statistics.median(spent)
        result[f"{case}_rss_mb"] = _memory_mb("VmHWM")
    print(json.dumps(result))
    return 0


def _memory_mb(field: str) -> float:
    """This process's resident memory now (VmRSS) or at its peak since a reset (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no {field} in /proc/self/status: the benchmark needs Linux")


def _print_table(results: dict[str, dict], repeats: int) -> None:
    fastest = {case: min(result[case] for result in results.values())
               for case in ("serving", "training")}
    events = next(iter(results.values()))["events"]
    print(f"{events:,} transactions; seconds are the median of {repeats} runs; rows/s counts "
          "transactions")
    print("| engine | 1 cut-off: s | rows/s | vs fastest | peak RSS MB "
          "| 6 cut-offs + labels: s | rows/s | vs fastest | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        cells = []
        for case in ("serving", "training"):
            cells += [f"{result[case]:.2f}", f"{events / result[case]:,.0f}",
                      f"{result[case] / fastest[case]:.2f}x", f"{result[f'{case}_rss_mb']:,.0f}"]
        print(f"| {name} | {' | '.join(cells)} |")
    loaded = statistics.median(result["loaded_mb"] for result in results.values())
    print(f"peak RSS includes the loaded data: about {loaded:,.0f} MB in every engine's process")


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.aggregation",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="1,000,000 transactions of 20,000 customers")
    _smoke.add_flag(parser)
    parser.add_argument("--run-engine", choices=["pandas", "polars", "duckdb"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
