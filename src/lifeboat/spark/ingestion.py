"""Ingestion on the spark engine: a file's parts validated on the executors, its good rows
committed by the driver in one transaction, with `lifeboat.ingest.ingest_file`'s outcomes
row by row.

The executors run Lifeboat's own validator (`validate_chunk`) on their part, chunk by chunk,
rather than pandera's Spark backend or rules written as Spark expressions, because then the
outcomes are identical by construction: one validator decides every wrong_type,
out_of_range, not_allowed, missing_required and too_long, with its number parsing, its limit
on storable integers, its derived keys and its wording of reasons. A second implementation
of the rules in another engine would agree with it only as far as tests happen to reach.

Everything but the load is the local engine's (`ingest_file` with this module's `Load`): the
run row, the duplicate-content check, the quarantine, the good/ and bad/ files. The load:

1. The driver creates staging tables named after the run and splits the file into parts
   (`file_parts`: a Parquet file as runs of its row groups, any other file whole).
2. One task per part reads and validates it, then stages its typed good rows (with their
   text as read, and as Parquet for good/), its issues and its bad rows in one transaction
   of its own. The part's claim row comes first: an earlier attempt's committed rows are
   deleted with it, so a retried task leaves no duplicate, and an attempt running at the
   same time waits on the claim, then fails on it, instead of doubling the part.
3. The driver, in one transaction: a key seen earlier in the file among valid rows makes a
   row `duplicate_key` (a window over all parts, first by row number wins; within a part the
   validator has done so already), a key already in the table `already_loaded`; the rest go
   into the table, every issue into the issues table, the good rows to good/'s spool, and
   the run is finished. A worker killed or a driver crashed before that commit leaves nothing
   in the dataset's table.
4. The staging tables are dropped, whatever happened; those a killed driver left behind go
   at the next run's start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Insert,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Update,
    cast,
    delete,
    func,
    insert,
    inspect,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, TableSpec
from lifeboat.db import (
    INGESTION_RUN_COLUMN,
    LOADED_AT_COLUMN,
    Database,
    IngestionIssue,
    IngestionRun,
    dataset_table,
    deferred_primary_key,
    ensure_dataset_table,
    insert_rows,
    utcnow,
)
from lifeboat.ingest import (
    CHUNK_ROWS,
    FilePart,
    IngestReport,
    LandingZone,
    SpooledRows,
    bad_rows_of,
    expand_source,
    file_parts,
    finish_run,
    ingest_file,
    read_part,
)
from lifeboat.spark.session import spark_session
from lifeboat.validation import FileRejected, RowIssue, malformed_issues, validate_chunk

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROWS_PER_PART = 500_000
Progress = Callable[[int], None]
STAGING_PREFIX = "lifeboat_stage_"
_PART, _SEQ, _ISSUE = "stage_part", "stage_seq", "stage_issue"


def ingest_on_spark(settings: Settings, database: Database, spec: DatasetSpec, source: str,
                    zone: LandingZone, progress: Progress = lambda _rows: None,
                    rows_per_part: int = ROWS_PER_PART,
                    chunk_rows: int = CHUNK_ROWS) -> list[IngestReport]:
    """Ingests each file `source` names (a file, a folder or a URL), one after the other."""
    return [ingest_file_on_spark(settings, database, spec, file, zone, progress, rows_per_part,
                                 chunk_rows) for file in expand_source(source)]


def ingest_file_on_spark(settings: Settings, database: Database, spec: DatasetSpec, source: str,
                         zone: LandingZone, progress: Progress = lambda _rows: None,
                         rows_per_part: int = ROWS_PER_PART,
                         chunk_rows: int = CHUNK_ROWS) -> IngestReport:
    """`ingest_file` with the file's parts validated in parallel on the cluster of
    `settings.spark_master`."""
    load = partial(_load_on_spark, spark_session(settings), rows_per_part, chunk_rows)
    return ingest_file(database, spec, source, zone, progress, load=load)


@dataclass(frozen=True)
class _Staging:
    """A run's staging tables; executors and driver build the same ones from spec and run."""

    metadata: MetaData
    parts: Table   # a row per staged part: its claim
    rows: Table    # good rows as validated: typed, their text as read, what the driver finds
    issues: Table  # the validator's issues and the parser's, as the issues table takes them
    bad: Table     # bad rows as bad/ shows them
    good: Table    # good rows as Parquet, chunk by chunk: good/ in the validator's own types


@dataclass(frozen=True)
class _Staged:
    part: int
    rows: int                # data rows read, skipped lines included
    rejected: str | None     # why the file is unusable, found in this part


def _staging(spec: TableSpec, run_id: int) -> _Staging:
    metadata = MetaData()
    name = f"{STAGING_PREFIX}{run_id}"
    typed = [Column(column.name, column.type) for column in dataset_table(spec).columns
             if column.name not in (INGESTION_RUN_COLUMN, LOADED_AT_COLUMN)]
    return _Staging(
        metadata,
        Table(f"{name}_parts", metadata, Column(_PART, Integer, primary_key=True,
                                                autoincrement=False)),
        Table(f"{name}_rows", metadata,
              Column("row", BigInteger, primary_key=True, autoincrement=False),
              Column(_PART, Integer), Column(_ISSUE, String(40)), *typed, *_raw_columns(spec)),
        Table(f"{name}_issues", metadata, Column(_PART, Integer), Column("row", BigInteger),
              Column("column", String(100)), Column("issue", String(40)), Column("value", Text)),
        Table(f"{name}_bad", metadata, Column(_PART, Integer), Column(_SEQ, Integer),
              Column("row", BigInteger), Column("issues", Text), Column("line", Text),
              *_raw_columns(spec)),
        Table(f"{name}_good", metadata, Column(_PART, Integer), Column(_SEQ, Integer),
              Column("rows", LargeBinary)),
    )


def _raw_columns(spec: TableSpec) -> list[Column]:
    """The text as read, by position: a spec column's name may be anything."""
    return [Column(_raw(position), Text) for position in range(len(spec.columns))]


def _raw(position: int) -> str:
    return f"stage_raw_{position}"


def _as_raw(spec: TableSpec) -> dict[str, str]:
    return {name: _raw(position) for position, name in enumerate(spec.columns)}


def _load_on_spark(spark: SparkSession, rows_per_part: int, chunk_rows: int, database: Database,
                   spec: TableSpec, source: str, checksum: str, run_id: int,
                   good_rows: SpooledRows, progress: Progress,
                   ) -> tuple[IngestReport, pd.DataFrame]:
    table = ensure_dataset_table(database.engine, spec)
    _drop_left_staging(database)
    staging = _staging(spec, run_id)
    parts = file_parts(source, rows_per_part)
    staging.metadata.create_all(database.engine)
    try:
        staged = _stage(spark, database.url, spec, run_id, parts, chunk_rows)
        rejected = next((part.rejected for part in staged if part.rejected), None)
        if rejected is not None:
            raise FileRejected(rejected)
        read = IngestReport(source, checksum, "succeeded", sum(part.rows for part in staged))
        report, bad = _commit(database, staging, table, spec, read, run_id, good_rows)
    finally:
        staging.metadata.drop_all(database.engine)
    progress(report.rows_total)
    return report, bad


def _drop_left_staging(database: Database) -> None:
    """Drops the staging tables of runs no longer running: a driver killed before its own
    cleanup leaves them (`ingest_file` has marked such a run failed on this host)."""
    names = [name for name in inspect(database.engine).get_table_names()
             if name.startswith(STAGING_PREFIX)]
    with database.session() as session:
        running = set(session.scalars(select(IngestionRun.id).where(
            IngestionRun.status == "running")))
    metadata = MetaData()
    for name in names:
        if int(name.removeprefix(STAGING_PREFIX).split("_")[0]) not in running:
            Table(name, metadata).drop(database.engine, checkfirst=True)


def _stage(spark: SparkSession, url: str, spec: TableSpec, run_id: int, parts: list[FilePart],
           chunk_rows: int) -> list[_Staged]:
    """One task per part, no shuffle; what each staged, in part order."""
    context = spark.sparkContext
    context.setJobDescription(f"ingest {parts[0].url} ({len(parts)} parts)")
    tasks = context.parallelize(list(enumerate(parts)), len(parts))
    staged = tasks.mapPartitions(partial(_stage_parts, url, spec, run_id, chunk_rows)).collect()
    return sorted(staged, key=lambda part: part.part)


def _stage_parts(url: str, spec: TableSpec, run_id: int, chunk_rows: int,
                 parts: Iterator[tuple[int, FilePart]]) -> Iterator[_Staged]:
    """An executor's task."""
    database = Database(url)
    try:
        for index, part in parts:
            yield _stage_part(database, _staging(spec, run_id), spec, index, part, chunk_rows)
    finally:
        database.dispose()


def _stage_part(database: Database, staging: _Staging, spec: TableSpec, index: int,
                part: FilePart, chunk_rows: int) -> _Staged:
    """All of the part staged in one transaction, or none of it: a task killed half way
    leaves nothing for its retry to trip over."""
    seen_keys: set[str] = set()
    bad_parts, rows = [], 0
    try:
        with database.session() as session:
            _claim(session, staging, index)
            chunks = read_part(part, spec, chunk_rows)
            for chunk in chunks.chunks:
                validated = validate_chunk(chunk, spec, seen_keys)
                raw = chunk.set_index("row").loc[validated.good["row"], list(spec.columns)]
                good = validated.good.assign(**{_raw(position): raw[name].to_numpy()
                                                for position, name in enumerate(spec.columns)})
                insert_rows(session, staging.rows, good, {_PART: index})
                session.execute(insert(staging.good).values(
                    {_PART: index, _SEQ: len(bad_parts), "rows": _parquet(validated.good)}))
                _stage_issues(session, staging, index, validated.issues)
                bad_parts.append(validated.bad)
                rows += len(chunk)
            _stage_issues(session, staging, index, malformed_issues(*chunks.malformed_rows()))
            bad = bad_rows_of(bad_parts, chunks).rename(columns=_as_raw(spec))
            insert_rows(session, staging.bad, bad.assign(**{_SEQ: range(len(bad))}),
                        {_PART: index})
    except FileRejected as rejected:
        return _Staged(index, 0, rejected.reason)
    return _Staged(index, rows + len(chunks.malformed), None)


def _claim(session: Session, staging: _Staging, index: int) -> None:
    """The part is this attempt's: an earlier attempt's rows go, and an attempt running at the
    same time now waits on the claim row, then fails on it."""
    if session.execute(delete(staging.parts).where(staging.parts.c[_PART] == index)).rowcount:
        for table in (staging.rows, staging.issues, staging.bad, staging.good):
            session.execute(delete(table).where(table.c[_PART] == index))
    session.execute(insert(staging.parts).values({_PART: index}))


def _parquet(frame: pd.DataFrame) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue().to_pybytes()


def _stage_issues(session: Session, staging: _Staging, index: int, issues: pd.DataFrame) -> None:
    insert_rows(session, staging.issues, issues.astype({"row": "Int64"}), {_PART: index})


def _commit(database: Database, staging: _Staging, table: Table, spec: TableSpec,
            read: IngestReport, run_id: int, good_rows: SpooledRows,
            ) -> tuple[IngestReport, pd.DataFrame]:
    """The one transaction that loads the file, or nothing of it."""
    key = spec.entity.key
    rows = staging.rows
    with database.session() as session:
        with deferred_primary_key(session, table) as plan:
            session.execute(_mark_repeated_keys(rows, key))
            if plan.check_loaded:
                session.execute(update(rows).where(
                    rows.c[_ISSUE].is_(None), rows.c[key].in_(select(table.c[key]))).values(
                    {_ISSUE: RowIssue.ALREADY_LOADED.value}))
            loaded = _insert_good(session, table, rows, spec, run_id, plan.key_indexed)
        session.execute(_insert_issues(staging, key, run_id))
        issues = dict(session.execute(
            select(IngestionIssue.issue, func.count()).where(IngestionIssue.run_id == run_id)
            .group_by(IngestionIssue.issue)).all())
        report = replace(read, rows_loaded=loaded, rows_rejected=read.rows_total - loaded,
                         rows_duplicate=issues.get(RowIssue.ALREADY_LOADED.value, 0),
                         issues=issues)
        _spool_good(session, staging, good_rows)
        bad = _bad_rows(session, staging, spec)
        finish_run(session, run_id, report)
    return report, bad


def _mark_repeated_keys(rows: Table, key: str) -> Update:
    """A key a valid row of an earlier part holds: the later row is a duplicate."""
    ranked = select(rows.c.row, func.row_number().over(
        partition_by=rows.c[key], order_by=rows.c.row).label("position")).where(
        rows.c[key].is_not(None)).subquery()
    return update(rows).where(rows.c.row.in_(select(ranked.c.row).where(
        ranked.c.position > 1))).values({_ISSUE: RowIssue.DUPLICATE_KEY.value})


def _insert_good(session: Session, table: Table, rows: Table, spec: TableSpec, run_id: int,
                 key_ordered: bool) -> int:
    """The rows nothing was found wrong with into the table; how many."""
    names = list(spec.columns)
    good = select(*[rows.c[name] for name in names], literal(run_id, Integer),
                  literal(utcnow(), DateTime(timezone=True))).where(rows.c[_ISSUE].is_(None))
    if key_ordered:
        good = good.order_by(rows.c[spec.entity.key])
    session.execute(insert(table).from_select([*names, INGESTION_RUN_COLUMN, LOADED_AT_COLUMN],
                                              good))
    return session.scalar(select(func.count()).select_from(rows).where(
        rows.c[_ISSUE].is_(None))) or 0


def _insert_issues(staging: _Staging, key: str, run_id: int) -> Insert:
    """The validator's and parser's issues, and the keys the driver found repeated or loaded."""
    issues, rows = staging.issues, staging.rows
    found = union_all(
        select(issues.c.row, issues.c.column, issues.c.issue, issues.c.value),
        select(rows.c.row, literal(key, String(100)).label("column"),
               rows.c[_ISSUE].label("issue"), cast(rows.c[key], Text).label("value"))
        .where(rows.c[_ISSUE].is_not(None)),
    ).subquery()
    return insert(IngestionIssue.__table__).from_select(
        ["run_id", "row", "column", "issue", "value"],
        select(literal(run_id, Integer), found.c.row, found.c.column, found.c.issue,
               found.c.value).order_by(found.c.row, found.c.column))


def _spool_good(session: Session, staging: _Staging, good_rows: SpooledRows) -> None:
    """The parts' good rows less those the driver rejected, in file order and in the
    validator's types: good/ as the local engine writes it."""
    rows = staging.rows
    rejected = list(session.scalars(select(rows.c.row).where(rows.c[_ISSUE].is_not(None))))
    chunks = select(staging.good.c.rows).order_by(staging.good.c[_PART], staging.good.c[_SEQ])
    for chunk in session.scalars(chunks.execution_options(yield_per=1)):
        frame = pq.read_table(pa.BufferReader(chunk)).to_pandas()
        good_rows.add(frame[~frame["row"].isin(rejected)].reset_index(drop=True))


def _bad_rows(session: Session, staging: _Staging, spec: TableSpec) -> pd.DataFrame:
    """bad/'s rows: the parts' own, then those the driver rejected, in row order."""
    bad, rows = staging.bad, staging.rows
    texts = _as_raw(spec)
    columns = ["row", *spec.columns, "issues", "line"]
    staged = select(bad.c.row, *[bad.c[texts[name]] for name in spec.columns], bad.c.issues,
                    bad.c.line).order_by(bad.c[_PART], bad.c[_SEQ])
    rejected = select(rows.c.row, *[rows.c[texts[name]] for name in spec.columns],
                      rows.c[_ISSUE]).where(rows.c[_ISSUE].is_not(None))
    late = pd.DataFrame(session.execute(rejected).all(), columns=columns[:-1])
    late["issues"] = spec.entity.key + ": " + late["issues"]
    found = pd.concat([pd.DataFrame(session.execute(staged).all(), columns=columns), late],
                      ignore_index=True).astype({"row": "Int64"})
    return found.sort_values("row", kind="stable", ignore_index=True)
