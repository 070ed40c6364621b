"""Ingestion on the spark engine gives the local engine's outcomes row by row: the same
dataset table, issues, bad/ and good/ files and run counts for the same files, and nothing
partial when a worker dies in the middle of the job."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import make_url, select, text

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, TableSpec, load_spec
from lifeboat.db import Database, IngestionIssue, IngestionRun, dataset_table, upgrade
from lifeboat.ingest import IngestReport, LandingZone, ingest_file
from lifeboat.spark import ingest_on_spark
from lifeboat.spark.ingestion import STAGING_PREFIX
from tests.ingest.test_events_ingest import CUSTOMERS_CSV, TRANSACTIONS
from tests.support.services import scratch_postgres_database
from tests.support.spark_cluster import SparkCluster

HEADER = "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked"
ROWS_PER_PART = 500
LOADED_AT = re.compile(r"loaded \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def _passenger(number: int, key: str | None = None, **cells: str) -> dict[str, str]:
    row = {"PassengerId": str(number) if key is None else key, "Survived": str(number % 2),
           "Pclass": str(number % 3 + 1), "Name": f"Person{number}, Mr. Some",
           "Sex": "male" if number % 2 else "female", "Age": str(number % 80),
           "SibSp": "0", "Parch": "1", "Ticket": f"T{number}", "Fare": f"{number % 50}.25",
           "Cabin": "" if number % 3 else f"C{number}", "Embarked": "SQC"[number % 3]}
    return {**row, **cells}


def _passengers(count: int, start: int = 1) -> list[dict[str, str]]:
    """Good rows, then bad rows of every kind and repeated keys among them."""
    rows = [_passenger(number) for number in range(start, start + count)]
    bad = {3: {"Age": "old"}, 17: {"Age": "150"}, 40: {"Pclass": "7"}, 55: {"Sex": ""},
           71: {"Name": "N" * 1_001}, 90: {"SibSp": "1.5"}, 120: {"Fare": "-3"},
           130: {"Embarked": "X", "Age": "-1"}}
    for position, cells in bad.items():
        rows[position].update(cells)
    rows[60]["PassengerId"] = rows[10]["PassengerId"]     # a key seen earlier in the file
    rows[61]["PassengerId"] = rows[3]["PassengerId"]      # only a bad row had it: loads
    rows[count - 5]["PassengerId"] = rows[20]["PassengerId"]       # far apart in the file
    rows[count - 4]["PassengerId"] = rows[count // 2]["PassengerId"]
    rows[count - 3]["PassengerId"] = rows[count - 4]["PassengerId"]
    rows[150]["PassengerId"] = rows[151]["PassengerId"] = ""  # keys derived from name, ticket
    rows[152].update({"PassengerId": "", "Name": rows[150]["Name"], "Ticket": rows[150]["Ticket"]})
    return rows


def _write_csv(path: Path, rows: list[dict[str, str]], malformed: bool = True) -> str:
    lines = [",".join(f'"{cell}"' for cell in row.values()) for row in rows]
    if malformed:
        lines[100:100] = ['9999,0,1,"too few",fields']
        lines[200:200] = ['9998,0,3,"Palsson, Master. Gosta",male,2,3,1,349909,21.075,,S,extra']
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return str(path)


def _write_parquet(path: Path, rows: list[dict[str, str]]) -> str:
    frame = pd.DataFrame(rows).replace("", None)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=250)
    return str(path)


@pytest.fixture
def fresh_postgres() -> Iterator[Callable[[str], Database]]:
    """Fresh databases on the PostgreSQL server, one per engine a test compares."""
    with ExitStack() as opened:
        def open_database(engine: str) -> Database:
            database = Database(opened.enter_context(
                scratch_postgres_database(f"lifeboat_spark_{engine}")))
            opened.callback(database.dispose)
            upgrade(database)
            return database

        yield open_database


class Engine:
    """One engine's database and landing zone, and what ingesting into them left."""

    def __init__(self, database: Database, zone: LandingZone, settings: Settings | None) -> None:
        self.database, self.zone, self.settings = database, zone, settings

    def ingest(self, spec: DatasetSpec, source: str) -> IngestReport:
        if self.settings is None:
            return ingest_file(self.database, spec, source, self.zone)
        [report] = ingest_on_spark(self.settings, self.database, spec, source, self.zone,
                                   rows_per_part=ROWS_PER_PART, chunk_rows=300)
        return report

    def outcome(self, spec: TableSpec) -> dict[str, object]:
        table = dataset_table(spec)
        loaded = [column for column in table.columns if column.name != "loaded_at"]
        with self.database.session() as session:
            rows = session.execute(select(*loaded).order_by(table.c[spec.entity.key])).all()
            issues = session.execute(select(
                IngestionIssue.run_id, IngestionIssue.row, IngestionIssue.column,
                IngestionIssue.issue, IngestionIssue.value)).all()
            runs = session.execute(select(
                IngestionRun.id, IngestionRun.source, IngestionRun.checksum, IngestionRun.status,
                IngestionRun.rows_total, IngestionRun.rows_loaded, IngestionRun.rows_rejected,
                IngestionRun.rows_duplicate, IngestionRun.error).order_by(IngestionRun.id)).all()
        landed = Path(self.zone.url)
        return {"rows": rows, "issues": sorted(issues, key=repr), "runs": runs,
                "files": {path.relative_to(landed).as_posix(): _content(path)
                          for path in sorted(landed.rglob("*")) if path.is_file()}}


def _content(path: Path) -> object:
    """A Parquet file's table (its metadata differs by the writer's row groups), else bytes."""
    if path.suffix == ".parquet":
        return pq.read_table(path)
    return path.read_bytes()


def _engines(fresh_postgres, spark_cluster: SparkCluster, tmp_path: Path) -> tuple[Engine, Engine]:
    spark_database = fresh_postgres("spark")
    settings = Settings(home=tmp_path / "home", spark_master=spark_cluster.master_url,
                        database_url=spark_database.url)
    return (Engine(fresh_postgres("local"), LandingZone(str(tmp_path / "local")), None),
            Engine(spark_database, LandingZone(str(tmp_path / "spark")), settings))


def _assert_same(local: Engine, spark: Engine, spec: TableSpec) -> dict[str, object]:
    expected, found = local.outcome(spec), spark.outcome(spec)
    assert found["rows"] == expected["rows"]
    assert found["issues"] == expected["issues"]
    assert _untimed_runs(found["runs"]) == _untimed_runs(expected["runs"])
    assert found["files"].keys() == expected["files"].keys()
    for name, content in expected["files"].items():
        assert found["files"][name].equals(content, check_metadata=True) if name.endswith(
            ".parquet") else (
            found["files"][name] == content), name
    return found


def _same_reports(local: IngestReport, spark: IngestReport) -> None:
    assert (spark.status, spark.rows_total, spark.rows_loaded, spark.rows_rejected,
            spark.rows_duplicate, spark.issues, _untimed(spark.reason)) == (
        local.status, local.rows_total, local.rows_loaded, local.rows_rejected,
        local.rows_duplicate, local.issues, _untimed(local.reason))


def _untimed_runs(runs: list) -> list[tuple]:
    return [(*run[:-1], _untimed(run.error)) for run in runs]


def _untimed(reason: str | None) -> str | None:
    """A duplicate's reason names when the earlier run finished, which differs by engine."""
    return None if reason is None else LOADED_AT.sub("loaded at <time>", reason)


def test_outcomes_equal_the_local_engines_row_by_row(
        spark_cluster: SparkCluster, fresh_postgres, titanic: DatasetSpec,
        tmp_path: Path) -> None:
    """A CSV (one part) with bad rows of every kind, and a Parquet file of several parts
    whose repeated keys lie in different parts, into an empty table and then a full one."""
    local, spark = _engines(fresh_postgres, spark_cluster, tmp_path)
    files = [_write_csv(tmp_path / "passengers.csv", _passengers(1_500)),
             _write_parquet(tmp_path / "more.parquet", _passengers(2_000, start=1_200))]
    for source in files:
        _same_reports(local.ingest(titanic, source), spark.ingest(titanic, source))
    outcome = _assert_same(local, spark, titanic)

    issues = {issue for *_, issue, _value in outcome["issues"]}
    assert issues == {"wrong_type", "out_of_range", "not_allowed", "missing_required", "too_long",
                      "malformed_row", "duplicate_key", "already_loaded"}
    parquet_run = outcome["runs"][1]
    assert parquet_run.rows_total == 2_000 and 0 < parquet_run.rows_duplicate < 400
    across_parts = [row for run, row, _, issue, _ in outcome["issues"]
                    if run == parquet_run.id and issue == "duplicate_key"]
    assert max(across_parts) > ROWS_PER_PART * 3


def test_events_in_json_lines_with_times_equal_the_local_engines(
        spark_cluster: SparkCluster, fresh_postgres, tmp_path: Path) -> None:
    """The customers dataset: times, a second table, JSON lines with an unreadable one."""
    customers = load_spec("customers")
    local, spark = _engines(fresh_postgres, spark_cluster, tmp_path)
    (tmp_path / "customers.csv").write_text(CUSTOMERS_CSV)
    (tmp_path / "transactions.json").write_text(
        "".join(json.dumps(record) + "\n" for record in TRANSACTIONS) + "{unreadable\n")
    for name in ("customers.csv", "transactions.json"):
        source = str(tmp_path / name)
        _same_reports(local.ingest(customers, source), spark.ingest(customers, source))
    for table in customers.sources:
        assert _assert_same(local, spark, table)["rows"]


def test_content_loaded_before_is_a_duplicate_and_loaded_keys_are_already_loaded(
        spark_cluster: SparkCluster, fresh_postgres, titanic: DatasetSpec,
        tmp_path: Path) -> None:
    local, spark = _engines(fresh_postgres, spark_cluster, tmp_path)
    first = _write_csv(tmp_path / "first.csv", _passengers(300), malformed=False)
    again = _write_csv(tmp_path / "again.csv", _passengers(300), malformed=False)
    overlap = _write_csv(tmp_path / "overlap.csv", _passengers(300, start=250), malformed=False)
    with spark.database.session() as session:  # as a driver killed in run 99 would leave it
        session.execute(text(f"CREATE TABLE {STAGING_PREFIX}99_rows (row integer)"))
    for source in (first, again, overlap):
        _same_reports(local.ingest(titanic, source), spark.ingest(titanic, source))
    assert _staging_left(spark.database) == 0
    outcome = _assert_same(local, spark, titanic)

    statuses = [(run.status, run.rows_loaded, run.rows_duplicate) for run in outcome["runs"]]
    assert statuses[1] == ("duplicate", 0, 0)
    assert statuses[2][0] == "succeeded" and statuses[2][2] > 0
    already = [row for run, row, _, issue, _ in outcome["issues"] if issue == "already_loaded"]
    assert len(already) == statuses[2][2]


def test_an_unreadable_file_is_quarantined_with_its_reason(
        spark_cluster: SparkCluster, fresh_postgres, titanic: DatasetSpec,
        tmp_path: Path) -> None:
    local, spark = _engines(fresh_postgres, spark_cluster, tmp_path)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"PassengerId,Name\x00\x01\x02\n" * 10)
    columns = tmp_path / "columns.csv"
    columns.write_text("PassengerId,Age\n1,22\n")
    for source in (binary, columns):
        local_report, spark_report = local.ingest(titanic, str(source)), spark.ingest(
            titanic, str(source))
        _same_reports(local_report, spark_report)
        assert spark_report.status == "rejected" and spark_report.reason
    outcome = _assert_same(local, spark, titanic)

    assert [run.status for run in outcome["runs"]] == ["rejected", "rejected"]
    assert "not a text file" in outcome["runs"][0].error
    assert "required columns missing" in outcome["runs"][1].error
    quarantined = [name for name in outcome["files"] if name.startswith("bad/")]
    assert len(quarantined) == 4 and outcome["rows"] == []


def test_a_worker_killed_mid_job_leaves_every_good_row_loaded_exactly_once(
        spark_cluster: SparkCluster, fresh_postgres, titanic: DatasetSpec,
        tmp_path: Path) -> None:
    """Tasks are held in their staging transactions (a lock on the parts' claims) while one
    worker is killed: its tasks run again elsewhere, and the dead ones' rows never count."""
    local, spark = _engines(fresh_postgres, spark_cluster, tmp_path)
    source = _write_parquet(tmp_path / "big.parquet", _passengers(3_000))
    local_report = local.ingest(titanic, source)
    found: list[IngestReport | BaseException] = []

    def ingest() -> None:
        try:
            found.append(spark.ingest(titanic, source))
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            found.append(exc)

    job = threading.Thread(target=ingest)
    with _connect(spark.database) as holder:
        job.start()
        claims = _staging_claims(holder)
        holder.execute(f'LOCK TABLE "{claims}" IN SHARE MODE')
        _wait_for_blocked_tasks(spark.database)
        spark_cluster.kill_worker(spark_cluster.live_workers()[0])
        spark_cluster.add_worker()
        holder.commit()
    job.join(timeout=300)

    [report] = found
    assert isinstance(report, IngestReport), report
    _same_reports(local_report, report)
    _assert_same(local, spark, titanic)
    assert _staging_left(spark.database) == 0


def _staging_left(database: Database) -> int:
    with database.session() as session:
        return session.scalar(text("SELECT count(*) FROM pg_tables WHERE tablename LIKE :name"),
                              {"name": f"{STAGING_PREFIX}%"})


def _connect(database: Database) -> psycopg.Connection:
    url = make_url(database.url).set(drivername="postgresql")
    return psycopg.connect(url.render_as_string(hide_password=False))


def _staging_claims(connection: psycopg.Connection, seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        name = connection.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s",
                                  (f"{STAGING_PREFIX}%_parts",)).fetchone()
        connection.commit()
        if name:
            return name[0]
        time.sleep(0.005)
    raise AssertionError("the job never created its staging tables")


def _wait_for_blocked_tasks(database: Database, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    with _connect(database) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                                      "wait_event_type = 'Lock' AND datname = current_database()"
                                      ).fetchone()[0]
            watcher.commit()
            if waiting >= 2:
                return
            time.sleep(0.05)
    raise AssertionError("no task reached its claim")
