"""Loading a file into its dataset table: once per content, all rows or none."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, IngestionRun, ensure_dataset_table
from lifeboat.db.models import utcnow
from lifeboat.db.tables import INGESTION_RUN_COLUMN, LOADED_AT_COLUMN
from lifeboat.errors import IngestError
from lifeboat.ingest.reader import read_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestReport:
    source: str
    checksum: str
    status: str  # "succeeded" or "skipped" (same content loaded before)
    rows_total: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0


def ingest_file(database: Database, spec: DatasetSpec, path: Path) -> IngestReport:
    """Loads one CSV file. The same content twice adds nothing; a failure leaves no rows behind."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"cannot read {path}: {exc.strerror}") from exc
    checksum = hashlib.sha256(content).hexdigest()
    source = str(path)
    if _already_loaded(database, spec, checksum):
        log.info("%s: same content loaded before, nothing to do", path.name)
        return IngestReport(source, checksum, "skipped")
    try:
        parsed = read_table(content, spec)
        table = ensure_dataset_table(database.engine, spec)
        with database.session() as session:
            run = IngestionRun(dataset=spec.name, source=source, checksum=checksum, status="running")
            session.add(run)
            session.flush()
            records = parsed.rows.assign(
                **{INGESTION_RUN_COLUMN: run.id, LOADED_AT_COLUMN: utcnow()}
            ).to_dict("records")
            loaded = _insert_new(session, table, records)
            run.rows_total = parsed.rows_total
            run.rows_loaded = loaded
            run.rows_rejected = len(parsed.rejected)
            run.rows_duplicate = len(records) - loaded
            run.status, run.finished_at = "succeeded", utcnow()
            report = IngestReport(source, checksum, run.status, run.rows_total, loaded,
                                  run.rows_rejected, run.rows_duplicate)
    except IngestError as exc:
        _record_failure(database, spec, source, checksum, str(exc))
        raise
    log.info("%s: %d rows loaded, %d rejected, %d already present", path.name,
             report.rows_loaded, report.rows_rejected, report.rows_duplicate)
    return report


def row_count(database: Database, spec: DatasetSpec) -> int:
    table = ensure_dataset_table(database.engine, spec)
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def _already_loaded(database: Database, spec: DatasetSpec, checksum: str) -> bool:
    with database.session() as session:
        found = session.scalar(
            select(IngestionRun.id).where(
                IngestionRun.dataset == spec.name,
                IngestionRun.checksum == checksum,
                IngestionRun.status == "succeeded",
            )
        )
    return found is not None


def _insert_new(session: Session, table, records: list[dict]) -> int:  # noqa: ANN001
    """Inserts rows whose key is new; rows already in the table are left as they are."""
    if not records:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing()
    else:
        statement = insert(table)
    before = session.scalar(select(func.count()).select_from(table))
    session.execute(statement, records)
    after = session.scalar(select(func.count()).select_from(table))
    return after - before


def _record_failure(database: Database, spec: DatasetSpec, source: str, checksum: str,
                    error: str) -> None:
    with database.session() as session:
        session.add(IngestionRun(dataset=spec.name, source=source, checksum=checksum,
                                 status="failed", error=error, finished_at=utcnow()))
