"""Loading a file into its dataset's table: once per content, all good rows or none.

Every attempt is an ingestion run row, a file whose content was loaded before included
(status `duplicate`, naming the run that loaded it; nothing else is done). Good rows land
in the table and in good/; bad rows go to bad/ with the reason, and each bad cell to the
issues table; a file that cannot be read at all is quarantined whole in bad/ with one
reason. A dataset with events has two tables and a file's name picks its table
(`DatasetSpec.source_for`), while runs, checksums, issues and metrics stay the dataset's.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import pandas as pd
from fsspec.core import url_to_fs
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifeboat.datasets import DatasetSpec, TableSpec
from lifeboat.db import (
    DUPLICATE_RUN,
    INGESTION_RUN_COLUMN,
    LOADED_AT_COLUMN,
    Database,
    IngestionIssue,
    IngestionRun,
    as_utc,
    deferred_primary_key,
    ensure_dataset_table,
    holder_is_gone,
    insert_rows,
    loaded_keys,
    this_process,
    utcnow,
)
from lifeboat.errors import IngestError
from lifeboat.files import content_checksum, open_source
from lifeboat.ingest.landing import BAD, GOOD, LandingZone, SpooledRows
from lifeboat.ingest.reader import FileChunks, read_ahead, read_chunks
from lifeboat.metrics import INGESTED_ROWS, VALIDATION_ISSUES
from lifeboat.validation import (
    FileRejected,
    RowIssue,
    ValidatedChunk,
    malformed_issues,
    reject_loaded_keys,
    validate_chunk,
)

log = logging.getLogger(__name__)
Progress = Callable[[int], None]


@dataclass(frozen=True)
class IngestReport:
    source: str
    checksum: str
    status: str  # succeeded | skipped (same content loaded before: a `duplicate` run) | rejected
    rows_total: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0  # of the rejected: keys an earlier file already loaded
    issues: dict[str, int] | None = None
    reason: str | None = None
    good_file: str | None = None  # the good rows in good/, once published


# An engine's load of one file: (database, its table's spec, source, checksum, run id, the
# good rows to publish, progress) to the run's report and its bad rows; FileRejected
# quarantines the file.
Load = Callable[[Database, TableSpec, str, str, int, SpooledRows, Progress],
                tuple[IngestReport, pd.DataFrame]]


def ingest_file(database: Database, spec: DatasetSpec, source: str, zone: LandingZone,
                progress: Progress = lambda _rows: None, load: Load | None = None) -> IngestReport:
    """Loads one file (any fsspec URL or path) into the table its name picks. The same content
    twice adds nothing.

    `load` is what an engine does between the run's start and its good/ and bad/ files (this
    process's chunk-by-chunk load by default); the run, the duplicate-content check and the
    quarantine are the same whichever engine loads."""
    source = str(source)
    name = posixpath.basename(source.rstrip("/"))
    _close_abandoned_runs(database)
    irregular = _irregular(source)
    if irregular:
        # Nothing of it is read, so the run is named by its path instead of its content.
        checksum = hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()
        return _quarantine(database, zone, source, checksum,
                           _start_run(database, spec, source, checksum),
                           f"{_stem(name)}.{checksum[:12]}", name, irregular, copy=False)
    checksum = content_checksum(source)
    if (earlier := _earlier_load(database, spec, checksum)) is not None:
        return _duplicate(database, spec, source, checksum, earlier)
    run_id = _start_run(database, spec, source, checksum)
    tag = f"{_stem(name)}.{checksum[:12]}"
    good_rows = SpooledRows()
    try:
        report, bad_rows = (load or _load)(database, spec.source_for(name), source, checksum,
                                           run_id, good_rows, progress)
    except FileRejected as rejected:
        good_rows.discard()
        return _quarantine(database, zone, source, checksum, run_id, tag, name, rejected.reason)
    except Exception as exc:
        good_rows.discard()
        _finish_failed(database, run_id, f"{type(exc).__name__}: {exc}")
        raise
    _count(spec.name, report)
    # After the commit: a crash here leaves the rows loaded and only these files unwritten.
    try:
        report = replace(report, good_file=good_rows.publish(zone, GOOD, f"{tag}.parquet"))
        if not bad_rows.empty:
            zone.write_rows(BAD, f"{tag}.bad.csv", bad_rows)
    except OSError as exc:
        raise IngestError(f"{name}: rows loaded, but the landing zone {zone.url} could not be "
                          f"written ({exc}); good/ and bad/ files for it are missing") from exc
    log.info("%s: %d rows loaded, %d rejected (%d already loaded before)", name,
             report.rows_loaded, report.rows_rejected, report.rows_duplicate)
    return report


def _count(dataset: str, report: IngestReport) -> None:
    for status, rows in (("loaded", report.rows_loaded), ("rejected", report.rows_rejected)):
        INGESTED_ROWS.labels(dataset=dataset, status=status).inc(rows)
    for issue, count in (report.issues or {}).items():
        VALIDATION_ISSUES.labels(dataset=dataset, issue=issue).inc(count)


def row_count(database: Database, spec: TableSpec) -> int:
    table = ensure_dataset_table(database.engine, spec)
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def _load(database: Database, spec: TableSpec, source: str, checksum: str, run_id: int,
          good_rows: SpooledRows, progress: Progress) -> tuple[IngestReport, pd.DataFrame]:
    table = ensure_dataset_table(database.engine, spec)
    chunks = read_chunks(lambda: open_source(source), spec)
    seen_keys: set[str] = set()
    bad_parts, spooled, counts = [], [], {"total": 0, "loaded": 0}
    issue_counts: dict[str, int] = {}
    constants = {INGESTION_RUN_COLUMN: run_id, LOADED_AT_COLUMN: utcnow()}
    with database.session() as session, ThreadPoolExecutor(1, "lifeboat-spool") as spooler:
        with deferred_primary_key(session, table) as plan:
            for chunk, validated in _validated_ahead(chunks.chunks, spec, seen_keys):
                if plan.check_loaded:
                    known = loaded_keys(session, table, validated.good[spec.entity.key])
                    validated = reject_loaded_keys(validated, chunk, spec, known)
                good = validated.good.drop(columns="row")
                counts["loaded"] += insert_rows(session, table, good, constants,
                                                sort_by=spec.entity.key if plan.key_indexed else None)
                spooled.append(spooler.submit(good_rows.add, validated.good))
                counts["total"] += len(chunk)
                _save_issues(session, run_id, validated.issues, issue_counts)
                bad_parts.append(validated.bad)
                progress(len(chunk))
        _save_issues(session, run_id, malformed_issues(*chunks.malformed_rows()), issue_counts)
        for spooling in spooled:
            spooling.result()  # a full disk fails the load, not just good/
        total = counts["total"] + len(chunks.malformed)
        report = IngestReport(source, checksum, "succeeded", total, counts["loaded"],
                              total - counts["loaded"],
                              issue_counts.get(RowIssue.ALREADY_LOADED.value, 0), issue_counts)
        finish_run(session, run_id, report)
    return report, bad_rows_of(bad_parts, chunks)


def _validated_ahead(chunks: Iterator[pd.DataFrame], spec: TableSpec,
                     seen_keys: set[str]) -> Iterator[tuple[pd.DataFrame, ValidatedChunk]]:
    """A three-stage pipeline: one thread parses the next chunk, another validates the one
    before it, while the caller loads the one before that.

    Arrow, pandas and the database driver release the GIL for much of their work, so the
    stages overlap. Only the validating thread touches `seen_keys`, one chunk at a time, in
    file order.
    """
    parsed = read_ahead(chunks, "lifeboat-read")
    return read_ahead(((chunk, validate_chunk(chunk, spec, seen_keys)) for chunk in parsed),
                      "lifeboat-validate")


def _save_issues(session: Session, run_id: int, issues: pd.DataFrame, counts: dict[str, int]) -> None:
    if issues.empty:
        return
    insert_rows(session, IngestionIssue.__table__, issues.astype({"row": "Int64"}),
                {"run_id": run_id})
    for issue, count in issues["issue"].value_counts().items():
        counts[str(issue)] = counts.get(str(issue), 0) + int(count)


def bad_rows_of(parts: list[pd.DataFrame], chunks: FileChunks) -> pd.DataFrame:
    """The bad rows of `parts` and the lines of `chunks` the parser skipped, in row order."""
    rows, lines = chunks.malformed_rows()
    unparsed = pd.DataFrame({"row": pd.array(rows, dtype="Int64"),
                             "issues": RowIssue.MALFORMED_ROW.value, "line": lines})
    bad = pd.concat([*parts, unparsed], ignore_index=True).astype({"row": "Int64"})
    return bad.sort_values("row", kind="stable", ignore_index=True)


def _quarantine(database: Database, zone: LandingZone, source: str, checksum: str, run_id: int,
                tag: str, name: str, reason: str, copy: bool = True) -> IngestReport:
    """The file (unless `copy` is off) and its reason into bad/, the run marked rejected."""
    if copy:
        with open_source(source) as stream:
            zone.write_bytes(BAD, f"{tag}.{_suffix(name)}", stream.read())
    zone.write_bytes(BAD, f"{tag}.reason.txt", f"{name}: {reason}\n".encode())
    with database.session() as session:
        run = session.get(IngestionRun, run_id)
        run.status, run.error, run.finished_at = "rejected", reason, utcnow()
    log.warning("%s: quarantined: %s", name, reason)
    return IngestReport(source, checksum, "rejected", reason=reason)


def _irregular(source: str) -> str | None:
    """Why a source is refused unread, judged without following links: anything but a
    regular file. A symbolic link dropped into raw/ would otherwise have ingestion copy its
    target (any file the service may read) into bad/, and a named pipe would block the
    reader for good. Object stores report objects as files and prefixes as directories."""
    try:
        fs, path = url_to_fs(source)
        info = fs.info(path)
    except (OSError, ValueError):
        return None  # reading it reports what is wrong
    if info.get("islink"):
        return "a symbolic link, not followed: only regular files are ingested"
    if info.get("type") != "file":
        return f"not a regular file ({info.get('type')}): only regular files are ingested"
    return None


def _earlier_load(database: Database, spec: DatasetSpec, checksum: str) -> IngestionRun | None:
    """The run that loaded this content, if one did (at most one: a unique index)."""
    with database.session() as session:
        found = session.scalar(select(IngestionRun).where(
            IngestionRun.dataset == spec.name, IngestionRun.checksum == checksum,
            IngestionRun.status == "succeeded"))
        if found is not None:
            session.expunge(found)
    return found


def _duplicate(database: Database, spec: DatasetSpec, source: str, checksum: str,
               earlier: IngestionRun) -> IngestReport:
    """Nothing to load, but the attempt is a run like any other, so that the run list
    answers "did my file arrive?" too: `duplicate`, naming the run that loaded it."""
    reason = (f"same content (sha256 {checksum[:12]}) as run {earlier.id}, "
              f"{posixpath.basename(earlier.source.rstrip('/'))}, loaded "
              f"{as_utc(earlier.finished_at):%Y-%m-%d %H:%M:%S} UTC: nothing loaded")
    host, pid = this_process()
    now = utcnow()
    with database.session() as session:
        session.add(IngestionRun(dataset=spec.name, source=source, checksum=checksum,
                                 status=DUPLICATE_RUN, error=reason, started_at=now,
                                 finished_at=now, host=host, pid=pid))
    log.info("%s: %s", posixpath.basename(source.rstrip("/")), reason)
    return IngestReport(source, checksum, "skipped", reason=reason)


def _close_abandoned_runs(database: Database) -> None:
    """Marks failed the runs this host left `running` in a process that no longer exists.

    Their transaction died with the process, so none of their rows were kept. Runs of
    other hosts cannot be checked from here and stay as they are.
    """
    host, _ = this_process()
    with database.session() as session:
        running = session.scalars(select(IngestionRun).where(
            IngestionRun.status == "running", IngestionRun.host == host))
        for run in running:
            if holder_is_gone(run.host, run.pid):
                run.status, run.finished_at = "failed", utcnow()
                run.error = (f"abandoned: process {run.pid} on {host} stopped before the load "
                             "finished; none of its rows were kept")


def _start_run(database: Database, spec: DatasetSpec, source: str, checksum: str) -> int:
    with database.session() as session:
        host, pid = this_process()
        run = IngestionRun(dataset=spec.name, source=source, checksum=checksum, status="running",
                           host=host, pid=pid)
        session.add(run)
        session.flush()
        return run.id


def finish_run(session: Session, run_id: int, report: IngestReport) -> None:
    run = session.get(IngestionRun, run_id)
    run.rows_total, run.rows_loaded = report.rows_total, report.rows_loaded
    run.rows_rejected, run.rows_duplicate = report.rows_rejected, report.rows_duplicate
    run.status, run.finished_at = "succeeded", utcnow()


def _finish_failed(database: Database, run_id: int, error: str) -> None:
    with database.session() as session:
        run = session.get(IngestionRun, run_id)
        run.status, run.error, run.finished_at = "failed", error, utcnow()


def _stem(name: str) -> str:
    return name.split(".")[0] or "file"


def _suffix(name: str) -> str:
    return name.split(".", 1)[1] if "." in name else "data"
