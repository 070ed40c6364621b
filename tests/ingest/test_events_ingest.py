"""The customers dataset's two sources: customers.csv into `customers`, transactions (JSON
lines or a JSON array) into `transactions`, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import DateTime, inspect, select

from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, IngestionIssue, IngestionRun, dataset_table, upgrade
from lifeboat.db.models import as_utc
from lifeboat.ingest import LandingZone, ingest_file, json_records, read_chunks, row_count
from lifeboat.orchestration import JobContext
from lifeboat.orchestration.jobs import ingest_files
from lifeboat.validation import validate_chunk
from tests.support.cli import lifeboat
from tests.support.homes import make_settings

CUSTOMERS_CSV = """customer_id,age,region,signup_date,loyalty_points,email
c1,34,north,2023-01-15,1200,a@example.com
c2,51,west,2023-03-02T08:30:00+01:00,300,
c3,17,south,2023-05-10,50,x@example.com
"""

# One object per line; the dirty ones (rows 4-8) each break one rule.
TRANSACTIONS = [
    {"transaction_id": "t1", "customer_id": "c1", "amount": 120.5, "currency": "USD",
     "timestamp": "2024-01-05T10:00:00Z", "payment_method": "card", "status": "completed"},
    {"transaction_id": "t2", "customer_id": "c1", "amount": 35,
     "timestamp": "2024-01-06T09:15:30.123456+02:00", "payment_method": "paypal",
     "status": "refunded"},
    {"transaction_id": "t3", "customer_id": "c2", "amount": 80, "timestamp": "2024-01-07",
     "status": "failed"},
    {"transaction_id": "t4", "customer_id": "c2", "amount": -5,
     "timestamp": "2024-01-08T00:00:00Z", "status": "completed"},
    {"transaction_id": "t5", "customer_id": "c1", "amount": 10,
     "timestamp": "2024-01-09T00:00:00Z", "status": "pending"},
    {"transaction_id": "t6", "customer_id": "c1", "amount": 10, "timestamp": "next tuesday",
     "status": "completed"},
    {"transaction_id": "t7", "amount": 10, "timestamp": "2024-01-10T00:00:00Z",
     "status": "completed"},
    {"transaction_id": "t1", "customer_id": "c2", "amount": 10,
     "timestamp": "2024-01-11T00:00:00Z", "status": "completed"},
]
GOOD_TRANSACTIONS = {
    "t1": ("c1", 120.5, datetime(2024, 1, 5, 10, tzinfo=UTC), "completed"),
    "t2": ("c1", 35.0, datetime(2024, 1, 6, 7, 15, 30, 123456, tzinfo=UTC), "refunded"),
    "t3": ("c2", 80.0, datetime(2024, 1, 7, tzinfo=UTC), "failed"),
}
ISSUES = [(4, "amount", "out_of_range", "-5.0"), (5, "status", "not_allowed", "pending"),
          (6, "timestamp", "wrong_type", "next tuesday"),
          (7, "customer_id", "missing_required", None),
          (8, "transaction_id", "duplicate_key", "t1")]


def _lines(records: list[dict]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


FORMATS = {
    "transactions.json": _lines(TRANSACTIONS),
    "transactions.array.json": json.dumps(TRANSACTIONS, indent=1).encode(),
    "transactions.jsonl.gz": gzip.compress(_lines(TRANSACTIONS), mtime=0),
}


@pytest.fixture(scope="module")
def customers() -> DatasetSpec:
    return load_spec("customers")


def _write(folder: Path, name: str, content: bytes | str) -> str:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


def _issues(database: Database) -> list[tuple]:
    with database.session() as session:
        return [tuple(row) for row in session.execute(
            select(IngestionIssue.row, IngestionIssue.column, IngestionIssue.issue,
                   IngestionIssue.value).order_by(IngestionIssue.row))]


def _transactions(database: Database, customers: DatasetSpec) -> dict[str, tuple]:
    table = dataset_table(customers.events)
    with database.session() as session:
        rows = session.execute(select(table.c.transaction_id, table.c.customer_id,
                                      table.c.amount, table.c.timestamp, table.c.status))
        return {row[0]: (row[1], row[2], as_utc(row[3]), row[4]) for row in rows}


def test_each_file_lands_in_its_own_table_with_typed_columns(
        database: Database, customers: DatasetSpec, zone: LandingZone, tmp_path: Path) -> None:
    people = ingest_file(database, customers, _write(tmp_path, "customers.csv", CUSTOMERS_CSV),
                         zone)
    events = ingest_file(database, customers,
                         _write(tmp_path, "transactions.json", FORMATS["transactions.json"]), zone)
    assert (people.rows_loaded, people.rows_rejected, people.issues) == (2, 1, {"out_of_range": 1})
    assert (events.rows_loaded, events.rows_rejected) == (3, 5)
    assert row_count(database, customers) == 2
    assert row_count(database, customers.events) == 3
    with database.session() as session:
        assert set(session.scalars(select(IngestionRun.dataset))) == {"customers"}
        signup = dataset_table(customers)
        signed_up = dict(session.execute(select(signup.c.customer_id, signup.c.signup_date)).all())
    assert {key: as_utc(moment) for key, moment in signed_up.items()} == {
        "c1": datetime(2023, 1, 15, tzinfo=UTC), "c2": datetime(2023, 3, 2, 7, 30, tzinfo=UTC)}
    schema = inspect(database.engine)
    time_column, = [c for c in schema.get_columns("transactions") if c["name"] == "timestamp"]
    assert isinstance(time_column["type"], DateTime)
    assert ["customer_id", "timestamp"] in [index["column_names"]
                                            for index in schema.get_indexes("transactions")]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_dirty_transactions_are_quarantined_with_reasons(
        name: str, database: Database, customers: DatasetSpec, zone: LandingZone,
        tmp_path: Path) -> None:
    """JSON lines, a JSON array and gzip-compressed lines: the same rows, the same reasons."""
    report = ingest_file(database, customers, _write(tmp_path, name, FORMATS[name]), zone)
    assert (report.status, report.rows_total, report.rows_loaded) == ("succeeded", 8, 3)
    assert report.issues == {issue: 1 for _, _, issue, _ in ISSUES}
    assert _transactions(database, customers) == GOOD_TRANSACTIONS
    assert _issues(database) == ISSUES
    bad = pd.read_csv(next((Path(zone.url) / "bad").glob("transactions.*.bad.csv")))
    assert bad["row"].tolist() == [4, 5, 6, 7, 8]
    assert bad["issues"].tolist()[:3] == ["amount: out_of_range", "status: not_allowed",
                                          "timestamp: wrong_type"]
    assert row_count(database, customers) == 0  # nothing went to the customers table


def test_the_same_file_again_is_a_no_op_and_its_rows_in_another_file_are_not_loaded_twice(
        database: Database, customers: DatasetSpec, zone: LandingZone, tmp_path: Path) -> None:
    lines = _write(tmp_path, "transactions.json", FORMATS["transactions.json"])
    ingest_file(database, customers, lines, zone)
    again = ingest_file(database, customers, lines, zone)
    assert again.status == "skipped"
    array = _write(tmp_path, "transactions.array.json", FORMATS["transactions.array.json"])
    other = ingest_file(database, customers, array, zone)
    assert (other.rows_loaded, other.rows_duplicate) == (0, 3)
    assert row_count(database, customers.events) == 3
    with database.session() as session:
        assert session.scalars(select(IngestionRun.status).order_by(IngestionRun.id)).all() == [
            "succeeded", "duplicate", "succeeded"]


def test_a_malformed_json_line_costs_only_its_own_row(
        database: Database, customers: DatasetSpec, zone: LandingZone, tmp_path: Path) -> None:
    good = _lines(TRANSACTIONS[:3]).splitlines()
    content = b"\n".join([good[0], b'{"transaction_id": "t9", "customer_id": ', good[1],
                          b"[1, 2]", b"", good[2]]) + b"\n"
    report = ingest_file(database, customers, _write(tmp_path, "transactions.json", content), zone)
    assert (report.rows_loaded, report.rows_rejected, report.issues) == (3, 2, {"malformed_row": 2})
    assert set(_transactions(database, customers)) == {"t1", "t2", "t3"}
    assert _issues(database) == [
        (2, None, "malformed_row", '{"transaction_id": "t9", "customer_id":'),
        (4, None, "malformed_row", "[1, 2]")]


@pytest.mark.parametrize("block_bytes", [64, 1 << 22])
def test_line_numbers_survive_blocks_blank_lines_and_bad_lines(
        customers: DatasetSpec, monkeypatch: pytest.MonkeyPatch, block_bytes: int) -> None:
    """Tiny blocks put lines across block edges: Arrow reads the clean blocks, line by line
    the one with the bad line; either way each record keeps its own line's number."""
    monkeypatch.setattr(json_records, "_BLOCK_BYTES", block_bytes)
    content = _lines(TRANSACTIONS[:2]) + b"\n   \nnot json\n" + _lines(TRANSACTIONS[2:4])
    chunks = read_chunks(lambda: io.BytesIO(content), customers.events)
    frame = pd.concat(list(chunks.chunks))
    assert frame["row"].tolist() == [1, 2, 6, 7]
    assert frame["transaction_id"].tolist() == ["t1", "t2", "t3", "t4"]
    assert [(line.row, line.text) for line in chunks.malformed] == [(5, "not json")]


def test_clean_lines_stay_on_arrows_fast_path(customers: DatasetSpec,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Line by line is for blocks with a bad line; clean ones, times and all, are Arrow's."""
    monkeypatch.setattr(json_records, "_parsed_line",
                        lambda line: pytest.fail(f"read line by line: {line!r}"))
    records = [TRANSACTIONS[i] for i in (0, 3, 4, 6)]  # times Arrow would parse, if let
    content = _lines(records)
    frame = next(read_chunks(lambda: io.BytesIO(content), customers.events).chunks)
    assert frame["timestamp"].tolist() == [record["timestamp"] for record in records]


@pytest.mark.parametrize(("record", "texts"), [
    ({"Transaction_ID": 18446744073709551617, "customer_id": 7, "amount": "12.50",
      "timestamp": "2024-01-05T10:00:00+02:00", "status": "completed", "extra": {"nested": [1]}},
     ["18446744073709551617", "7", "12.50", "2024-01-05T10:00:00+02:00"]),
    ({"transaction_id": "2024-01-05", "customer_id": True, "amount": 12.5,
      "timestamp": "2024-01-05T10:00:00+02:00", "status": "completed"},
     ["2024-01-05", "true", "12.5", "2024-01-05T10:00:00+02:00"]),
])
def test_json_values_arrive_as_the_files_text(customers: DatasetSpec, record: dict,
                                              texts: list[str]) -> None:
    """Numbers keep their digits (even past 64 bits), keys match like CSV headers, and what
    Arrow would parse as a time stays the file's text, whichever reader (Arrow or line by
    line) takes the line, and in an array too."""
    for content in (_lines([record]), json.dumps([record]).encode()):
        frame = next(read_chunks(lambda c=content: io.BytesIO(c), customers.events).chunks)
        values = frame.loc[0, ["transaction_id", "customer_id", "amount", "timestamp"]]
        assert values.tolist() == texts
        assert pd.isna(frame.loc[0, "currency"])


def test_json_takes_the_specs_missing_value_markers(titanic: DatasetSpec) -> None:
    content = b'{"pclass": 1, "name": "A, Mr. B", "sex": "male", "age": "?", "fare": 7.25}\n'
    frame = next(read_chunks(lambda: io.BytesIO(content), titanic).chunks)
    validated = validate_chunk(frame, titanic, set())
    assert validated.issues.empty
    assert pd.isna(validated.good.loc[0, "age"]) and validated.good.loc[0, "fare"] == 7.25


def test_times_round_trip_to_the_microsecond(
        database_url: str, customers: DatasetSpec, zone: LandingZone, tmp_path: Path) -> None:
    """On PostgreSQL the sessions run in another time zone: no time may be read in it."""
    if database_url.startswith("postgresql"):
        database_url += "?options=-c%20timezone%3DAsia%2FKolkata"
    database = Database(database_url)
    upgrade(database)
    moments = {"2024-02-29T23:59:59.999999Z": datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
               "2024-03-31T01:30:00-05:00": datetime(2024, 3, 31, 6, 30, tzinfo=UTC),
               "2024-06-01T12:00:00": datetime(2024, 6, 1, 12, tzinfo=UTC),
               "1970-01-01": datetime(1970, 1, 1, tzinfo=UTC)}
    records = [{"transaction_id": f"t{i}", "customer_id": "c1", "amount": 1, "timestamp": text,
                "status": "completed"} for i, text in enumerate(moments)]
    report = ingest_file(database, customers, _write(tmp_path, "transactions.json",
                                                     _lines(records)), zone)
    assert report.rows_loaded == len(moments)
    loaded = {key: row[2] for key, row in _transactions(database, customers).items()}
    assert loaded == {f"t{i}": moment for i, moment in enumerate(moments.values())}
    spooled = pd.read_parquet(report.good_file)
    assert spooled["timestamp"].dt.to_pydatetime().tolist() == list(moments.values())
    database.dispose()


def test_ingest_job_routes_the_landing_zones_files(
        database_url: str, customers: DatasetSpec, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", database_url, dataset="customers")
    database = Database(settings.db_url)
    upgrade(database)
    context = JobContext(settings, database, customers)
    raw = Path(settings.landing_url) / "raw"
    raw.mkdir(parents=True)
    _write(raw, "customers.csv", CUSTOMERS_CSV)
    _write(raw, "transactions-2024-01.json", FORMATS["transactions.array.json"])
    reports = ingest_files(context, context.zone.waiting(), remove=True)
    assert [(Path(r.source).name, r.rows_loaded) for r in reports] == [
        ("customers.csv", 2), ("transactions-2024-01.json", 3)]
    assert (row_count(database, customers), row_count(database, customers.events)) == (2, 3)
    assert list(raw.iterdir()) == []
    database.dispose()


def test_validate_is_a_dry_run_per_issue_type(tmp_path: Path) -> None:
    source = _write(tmp_path, "transactions.json", FORMATS["transactions.json"])
    result = lifeboat(tmp_path / "home", "validate", source, LIFEBOAT_DATASET="customers",
                      COLUMNS="200")
    assert result.returncode == 1, result.stderr
    assert "8 rows, 3 valid, 5 invalid" in result.stdout
    for row, column, issue, value in ISSUES:
        shown = f"{row}, {column}, {value!r}"
        assert re.search(rf"{issue}\s*│\s*1\s*│\s*{re.escape(shown)}", result.stdout), issue
    assert not (tmp_path / "home" / "landing").exists()
