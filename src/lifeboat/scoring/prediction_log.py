"""The prediction log's writer: a request appends its predictions to a journal on disk and
returns; a background thread writes them to the database in batches, and what the database
cannot take now (or what a killed process left) is replayed from the journal when it can.

Every write is an insert-if-absent on the prediction id, so rows written twice (a commit that
reached the database but whose answer was lost with the connection, or a journal file
replayed although most of its rows were written before the process died) still leave
exactly one row per prediction.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import logging
import math
import os
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from lifeboat.db import Database, Prediction
from lifeboat.metrics import (
    PREDICTION_LOG_PENDING,
    PREDICTION_LOG_REJECTED,
    PREDICTION_LOG_SPILLED,
    PREDICTION_LOG_WRITTEN,
)
from lifeboat.scoring.predictor import ServedPrediction

log = logging.getLogger(__name__)

_TABLE = Prediction.__table__
_NAMES = ", ".join(f'"{column.name}"' for column in _TABLE.columns)  # in the table's order
_DIALECTS = ("postgresql", "sqlite")
_PENDING_MEMORY = PREDICTION_LOG_PENDING.labels(where="memory")
_PENDING_DISK = PREDICTION_LOG_PENDING.labels(where="disk")

Row = dict[str, Any]


class PredictionLog:
    """Takes served predictions off the request path and gets each into the database once.

    `submit` first appends the predictions to this process's journal on disk, so that a
    prediction answered is one a restart can still write even if the process is killed the
    next instant (with `journal` off, only rows the database cannot take go to the
    journal, and a killed process loses what was queued); then it queues them in memory (at most `capacity`; beyond that the journal
    alone keeps them, to be replayed). The writer thread takes up to `batch_size` queued
    rows at a time, once `linger_seconds` have passed since it saw the first (or at once
    when a batch is full or someone flushes): batches grow with the load, and an idle
    service writes each request within `linger_seconds`. When the database fails, the
    journal files holding the failed rows are kept for replay and the database is tried
    again every `retry_seconds`; once it answers, they are replayed, oldest first, one file
    between two queued batches: files of at most `journal_file_rows` rows keep the queue
    moving while a long outage is caught up.
    """

    def __init__(self, database: Database, journal_folder: Path, *, capacity: int = 10_000,
                 batch_size: int = 500, linger_seconds: float = 0.05,
                 retry_seconds: float = 1.0, journal_file_rows: int = 2_000,
                 journal: bool = True, fsync: bool = False,
                 adopt_seconds: float = 5.0) -> None:
        if database.engine.dialect.name not in _DIALECTS:
            raise ValueError(f"the prediction log writes to SQLite or PostgreSQL, not "
                             f"{database.engine.dialect.name}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._database = database
        self._statement = _insert_statement(database.engine.dialect)
        self._journal = Journal(Path(journal_folder), journal_file_rows, fsync=fsync)
        self._journaled = journal
        self._capacity = capacity
        self._batch_size = batch_size
        self._linger_seconds = linger_seconds
        self._retry_seconds = retry_seconds
        self._adopt_seconds = adopt_seconds
        self._adopt_at = time.monotonic() + adopt_seconds
        self._queue: deque[tuple[Row, Path | None]] = deque()
        self._changed = threading.Condition()
        self._accepted = 0  # rows ever queued; the writer settles them in queue order
        self._settled = 0   # of those, rows written to the database or left to the journal
        self._flushing = 0  # callers waiting in flush(): no lingering for them
        self._closing = False
        self._abandoned = False  # close() gave up waiting and took the queue over
        self._outage: str | None = None
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, predictions: Iterable[ServedPrediction]) -> None:
        """Journals the predictions, then hands them over without waiting for the database.
        Never raises: a prediction already computed is served even if logging it fails
        (which is logged)."""
        rows = [_row(prediction) for prediction in predictions]
        try:
            path = self._journal.append(rows) if self._journaled else None
            overflow = self._enqueue(rows, path)
            if overflow:
                self._leave_to_journal([(row, path) for row in rows[len(rows) - overflow:]])
        except Exception:  # noqa: BLE001 - the request must not fail on its log
            log.exception("could not log %d predictions", len(rows))

    def flush(self, timeout: float = 2.0) -> bool:
        """Waits until everything submitted before the call has been written or left to the
        journal, so a reader sees its own writes. True when it is all in the database."""
        deadline = time.monotonic() + timeout
        with self._changed:
            target = self._accepted
            self._flushing += 1
            self._changed.notify_all()
            try:
                while self._settled < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        return False
                    self._changed.wait(remaining)
            finally:
                self._flushing -= 1
            return self._outage is None and self._journal.pending == 0

    def status(self) -> str:
        """One line for /ready: "ok", or what is waiting and why."""
        with self._changed:
            outage, queued = self._outage, len(self._queue)
        pending = self._journal.pending
        if outage is not None:
            return (f"degraded: {queued + pending} predictions waiting, database unreachable "
                    f"({outage})")
        if pending:
            return f"catching up: {queued + pending} journaled predictions being written"
        return "ok"

    def close(self, timeout: float = 10.0) -> None:
        """Drains: the writer empties the queue and replays the journal while the database
        takes them, for at most `timeout` seconds. What is left stays in the journal,
        fsync'd and reported in the log; the next start writes it."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join(timeout)
        with self._changed:
            self._abandoned = True
            left = list(self._queue)
            self._forget(len(left))
        if left:
            self._leave_to_journal(left)
        if self._journal.pending:
            log.warning("%d predictions are not in the database yet: they wait in %s and the "
                        "next start writes them", self._journal.pending, self._journal.folder)
        self._journal.close()

    def _enqueue(self, rows: list[Row], path: Path | None) -> int:
        """Queues what fits; returns how many did not. Once closing, nothing is queued: the
        writer may already have finished. The writer is woken only when it has something
        new to do (its queue was empty, or now holds a full batch): a wake-up per request
        would take the GIL from requests far more often than the writing does."""
        with self._changed:
            queued = len(self._queue)
            room = 0 if self._closing else max(self._capacity - queued, 0)
            taken = rows[:room]
            self._queue.extend((row, path) for row in taken)
            self._accepted += len(taken)
            _PENDING_MEMORY.inc(len(taken))
            if taken and (queued == 0 or queued < self._batch_size <= len(self._queue)):
                self._changed.notify_all()
        return len(rows) - len(taken)

    def _run(self) -> None:
        while self._wait_for_work():
            try:
                self._step()
            except Exception:  # noqa: BLE001 - the writer outlives any one failure
                log.exception("the prediction log's writer failed; retrying")
                time.sleep(self._retry_seconds)

    def _wait_for_work(self) -> bool:
        """Sleeps until a batch is due (see the class) or the journal can be replayed; False
        once closing leaves nothing it could do."""
        with self._changed:
            due: float | None = None
            while not self._abandoned:
                replay_in = self._replay_in()
                adopt_in = self._adopt_at - time.monotonic()
                if self._queue and due is None:
                    due = time.monotonic() + self._linger_seconds
                if replay_in == 0 or adopt_in <= 0 or (self._queue and self._batch_due(due)):
                    return True
                if self._closing and not self._queue:
                    return False
                lingered = None if due is None else due - time.monotonic()
                waits = [left for left in (replay_in, lingered, adopt_in) if left is not None]
                self._changed.wait(min(waits))
            return False

    def _batch_due(self, due: float) -> bool:
        return (len(self._queue) >= self._batch_size or self._flushing > 0 or self._closing
                or time.monotonic() >= due)

    def _replay_in(self) -> float | None:
        """Seconds until the journal should be replayed (0: now); None when nothing in it
        waits."""
        if not self._journal.pending:
            return None
        return max(self._retry_at - time.monotonic(), 0.0) if self._outage else 0.0

    def _step(self) -> None:
        """One queued batch, then one journal file to replay: neither starves the other.
        Every `adopt_seconds`, the journals of sibling processes that died (a replica
        killed beside this one, sharing its home) are taken over to be replayed here: a
        prediction they answered is written without waiting for one of them to restart."""
        if time.monotonic() >= self._adopt_at:
            self._adopt_at = time.monotonic() + self._adopt_seconds
            self._journal.adopt_orphans()
        with self._changed:
            batch = list(itertools.islice(self._queue, self._batch_size))
        if batch:
            written = self._database_worth_trying() and self._write([row for row, _ in batch])
            with self._changed:
                if not self._abandoned:
                    self._forget(len(batch))
            if written:
                for path, count in Counter(path for _, path in batch).items():
                    if path is not None:
                        self._journal.settle(path, count, written=True)
            else:
                self._leave_to_journal(batch)
        if self._database_worth_trying():
            self._replay_oldest()

    def _leave_to_journal(self, queued: list[tuple[Row, Path | None]]) -> None:
        """Rows the database did not take (or the queue had no room for) wait in the
        journal for a replay; with the journal off, they are written to it now."""
        counts = Counter(path for _, path in queued if path is not None)
        if unjournaled := [row for row, path in queued if path is None]:
            counts[self._journal.append(unjournaled)] += len(unjournaled)
        for path, count in counts.items():
            self._journal.settle(path, count, written=False)
        PREDICTION_LOG_SPILLED.inc(len(queued))

    def _forget(self, count: int) -> None:
        """Drops the oldest `count` queued rows, now written or left to the journal (lock
        held)."""
        for _ in range(count):
            self._queue.popleft()
        self._settled += count
        _PENDING_MEMORY.dec(count)
        self._changed.notify_all()

    def _database_worth_trying(self) -> bool:
        return self._outage is None or time.monotonic() >= self._retry_at

    def _replay_oldest(self) -> None:
        """Writes the oldest journal file waiting for replay, and deletes it once all of it
        is in."""
        path = self._journal.oldest()
        if path is None:
            return
        for chunk in self._journal.read(path, self._batch_size):
            if not self._write(chunk):
                return
        self._journal.remove(path)
        log.info("wrote the journaled predictions of %s", path.name)

    def _write(self, rows: list[Row]) -> bool:
        """True when the rows are in the database (or set aside as ones it refuses); False,
        with the outage recorded, when it could not be reached."""
        try:
            try:
                self._insert(rows)
            except StatementError as exc:
                if not _refused(exc):
                    raise
                self._insert_singly(rows)
        except Exception as exc:  # noqa: BLE001 - unreachable, whatever the cause: rows wait
            self._fail(exc)
            return False
        PREDICTION_LOG_WRITTEN.inc(len(rows))
        if self._outage is not None:
            log.info("the database answers again: writing the prediction log")
            with self._changed:
                self._outage = None
        return True

    def _insert(self, rows: list[Row]) -> None:
        """Inserts the rows whose id is not there yet, in one statement and transaction."""
        with self._database.engine.begin() as connection:
            self._statement.execute(connection, rows)

    def _insert_singly(self, rows: list[Row]) -> None:
        """Finds the rows the database refuses outright, so that one bad prediction does not
        hold back the others: they are set aside in a rejected file and logged."""
        rejected = []
        for row in rows:
            try:
                self._insert([row])
            except StatementError as exc:
                if not _refused(exc):
                    raise
                log.error("the database refuses prediction %s (%s); set aside in %s",
                          row["id"], _brief(exc), self._journal.folder)
                rejected.append(row)
        if rejected:
            self._journal.reject(rejected)
            PREDICTION_LOG_REJECTED.inc(len(rejected))

    def _fail(self, exc: Exception) -> None:
        reason = _brief(exc)
        if self._outage is None:
            log.warning("the database does not take predictions (%s): keeping them in the "
                        "journal %s and retrying every %s s", reason, self._journal.folder,
                        self._retry_seconds)
        with self._changed:
            self._outage = reason
            self._retry_at = time.monotonic() + self._retry_seconds


@dataclass
class _JournalFile:
    handle: BinaryIO  # open for the whole life of the file: it holds the file's lock
    rows: int = 0          # lines appended
    unsettled: int = 0     # of those, rows still queued in memory
    replay: bool = False   # some of its rows are in it alone: it must be replayed
    sealed: bool = False   # no more appends


class Journal:
    """Every prediction on its way to the database, in JSON lines files appended before the
    prediction is answered.

    A write reaches the operating system at once (one unbuffered write per request), so it
    survives the process being killed; with `fsync` each append is also forced to the disk,
    to survive the machine crashing (a file is always fsync'd when its rows must wait for
    a replay, and at close). A file is deleted once every row in it is in the database; a
    file holding rows the database did not take is kept and replayed whole (the insert
    skips the ids already written).

    Each file is held under an exclusive lock by the process that wrote or adopted it, so
    processes sharing a home (uvicorn's workers) never replay each other's files; the lock
    dies with its process, and a live process sharing the folder adopts what it left: at
    its start, and every few seconds while it runs (`adopt_orphans`).
    """

    def __init__(self, folder: Path, file_rows: int, *, fsync: bool = False) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._file_rows = file_rows
        self._fsync = fsync
        self._lock = threading.Lock()
        self._files: dict[Path, _JournalFile] = {}
        self._current: Path | None = None
        self.adopt_orphans()

    @property
    def pending(self) -> int:
        """Rows in files waiting for a replay."""
        with self._lock:
            return sum(file.rows for file in self._files.values() if file.replay)

    def append(self, rows: list[Row]) -> Path:
        """Writes the rows, queued in memory from now on; returns the file they are in."""
        data = b"".join(map(_line, rows))
        with self._lock:
            if self._current is None:
                self._current = self._create("predictions")
            path, file = self._current, self._files[self._current]
            file.handle.write(data)
            if self._fsync:
                os.fsync(file.handle.fileno())
            file.rows += len(rows)
            file.unsettled += len(rows)
            if file.replay:
                _PENDING_DISK.inc(len(rows))
            if file.rows >= self._file_rows:
                self._seal(path)
            return path

    def settle(self, path: Path, count: int, *, written: bool) -> None:
        """`count` of the file's queued rows are now in the database (`written`), or in
        this file alone until it is replayed. A file whose rows are all written is
        deleted once sealed."""
        with self._lock:
            file = self._files.get(path)
            if file is None:  # replayed whole and deleted meanwhile
                return
            file.unsettled -= count
            if not written:
                os.fsync(file.handle.fileno())
            if not written and not file.replay:
                file.replay = True
                _PENDING_DISK.inc(file.rows)
            if file.sealed and not file.unsettled and not file.replay:
                self._delete(path)

    def reject(self, rows: list[Row]) -> None:
        """Keeps rows the database refuses in a file of their own, never replayed."""
        path = self.folder / f"rejected-{_stamp()}.jsonl"
        with path.open("ab") as handle:
            handle.write(b"".join(map(_line, rows)))
            handle.flush()
            os.fsync(handle.fileno())

    def oldest(self) -> Path | None:
        """The next file to replay. The one being appended to comes last, and is sealed
        first (the next append starts a new file)."""
        with self._lock:
            waiting = sorted(path for path, file in self._files.items() if file.replay)
            sealed = [path for path in waiting if self._files[path].sealed]
            if not sealed and self._current in waiting:
                sealed = [self._current]
                self._seal(self._current)
            return sealed[0] if sealed else None

    def read(self, path: Path, chunk_rows: int) -> Iterator[list[Row]]:
        """The file's rows, a chunk at a time; none if someone deleted it."""
        if not path.exists():
            return
        with path.open(encoding="utf-8") as handle:
            rows = (row for row in map(_parse_line, handle) if row is not None)
            while chunk := list(itertools.islice(rows, chunk_rows)):
                yield chunk

    def remove(self, path: Path) -> None:
        """Deletes a replayed file: every row in it is in the database."""
        with self._lock:
            _PENDING_DISK.dec(self._files[path].rows)
            self._delete(path)

    def close(self) -> None:
        """Deletes the files whose rows are all written, makes the others durable and
        releases them (and their locks) to the next process."""
        with self._lock:
            for path, file in list(self._files.items()):
                if file.replay:
                    os.fsync(file.handle.fileno())
                    file.handle.close()
                    _PENDING_DISK.dec(file.rows)
                    del self._files[path]
                else:
                    self._delete(path)
            self._current = None

    def _seal(self, path: Path) -> None:
        """No more appends to this file (lock held)."""
        file = self._files[path]
        file.sealed = True
        if path == self._current:
            self._current = None
        if not file.unsettled and not file.replay:
            self._delete(path)

    def _delete(self, path: Path) -> None:
        """Lock held. Unlinked before its handle closes: no other process can adopt it."""
        file = self._files.pop(path)
        path.unlink(missing_ok=True)
        file.handle.close()
        if path == self._current:
            self._current = None

    def _create(self, prefix: str) -> Path:
        path = self.folder / f"{prefix}-{_stamp()}.jsonl"
        handle = path.open("ab", buffering=0)
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._files[path] = _JournalFile(handle)
        return path

    def adopt_orphans(self) -> None:
        """Takes over the files of processes that are gone (their locks are free)."""
        for path in sorted(self.folder.glob("predictions-*.jsonl")):
            with self._lock:
                if path in self._files:
                    continue
            try:
                handle = path.open("rb", buffering=0)  # never created here: only adopted
            except FileNotFoundError:  # written and deleted since the listing
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live process owns it
                handle.close()
                continue
            if not path.exists():  # its process deleted it between the listing and the lock
                handle.close()
                continue
            with path.open("rb") as lines:
                rows = sum(1 for _ in lines)
            with self._lock:
                self._files[path] = _JournalFile(handle, rows, replay=True, sealed=True)
            _PENDING_DISK.inc(rows)
            log.info("%d journaled predictions in %s will be written", rows, path.name)


class _PostgresInsert:
    """INSERT ... SELECT FROM unnest(one array per column) ON CONFLICT (id) DO NOTHING,
    with the arrays sent in PostgreSQL's binary format.

    Its text is the same whatever the number of rows, so the server parses it once (a
    multi-row VALUES list is parsed anew each time: measured, 120 of the 190 ms that 500
    rows took), and COPY cannot skip the ids already there. Binary, because psycopg quotes
    a text array's elements with a regular expression per character to escape: the JSON
    inputs made that 56 µs of the writer's CPU per row, against 15 µs binary (measured),
    and that CPU is taken from the requests, whose thread shares the GIL.
    """

    def __init__(self, dialect: Dialect) -> None:
        arrays = ", ".join(f"CAST(%({column.name})b AS {column.type.compile(dialect)}[])"
                           for column in _TABLE.columns)
        self.sql = (f'INSERT INTO "{_TABLE.name}" ({_NAMES}) SELECT * FROM unnest({arrays}) '
                    f'ON CONFLICT ("id") DO NOTHING')

    def execute(self, connection: Connection, rows: list[Row]) -> None:
        arrays = {column.name: [row[column.name] for row in rows] for column in _TABLE.columns}
        arrays["input"] = [json.dumps(value) for value in arrays["input"]]
        arrays["features"] = [None if value is None else json.dumps(value)
                              for value in arrays["features"]]
        connection.exec_driver_sql(self.sql, arrays)


class _SqliteInsert:
    """One multi-row INSERT ... ON CONFLICT (id) DO NOTHING per batch, sent to the driver
    as it is: each value goes through its column type's own conversion (the same text
    SQLAlchemy writes), without SQLAlchemy's per-statement work (measured: 28 µs of CPU a
    row through SQLAlchemy's insertmanyvalues). Not executemany: the driver releases the
    GIL around every row, and under load each row then waits for the request thread to
    hand the GIL back (measured under load: 235 ms for a batch of 500 rows, where one
    statement took 6 ms for 120)."""

    MAX_VARIABLES = 32766  # SQLite's limit on one statement's bound values

    def __init__(self, dialect: Dialect) -> None:
        self.marks = f"({', '.join('?' for _ in _TABLE.columns)})"
        self.columns = [(column.name, column.type.dialect_impl(dialect).bind_processor(dialect))
                        for column in _TABLE.columns]
        self.rows_per_statement = self.MAX_VARIABLES // len(self.columns)

    def execute(self, connection: Connection, rows: list[Row]) -> None:
        for first in range(0, len(rows), self.rows_per_statement):
            chunk = rows[first:first + self.rows_per_statement]
            sql = (f'INSERT INTO "{_TABLE.name}" ({_NAMES}) VALUES '
                   f'{", ".join(itertools.repeat(self.marks, len(chunk)))} '
                   f'ON CONFLICT ("id") DO NOTHING')
            values = []
            for row in chunk:
                values.extend(row[name] if convert is None else convert(row[name])
                              for name, convert in self.columns)
            connection.exec_driver_sql(sql, tuple(values))


def _insert_statement(dialect: Dialect) -> _PostgresInsert | _SqliteInsert:
    return _PostgresInsert(dialect) if dialect.name == "postgresql" else _SqliteInsert(dialect)


def _row(prediction: ServedPrediction) -> Row:
    row = {column.name: getattr(prediction, column.key) for column in _TABLE.columns}
    if prediction.features is not None:
        row["features"] = {name: _json_value(value) for name, value in prediction.features.items()}
    return row


def _json_value(value: object) -> object:
    """A feature value JSON can carry: NaN (missing) and infinities become null, since
    PostgreSQL's json type refuses them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _line(row: Row) -> bytes:
    """One journal line. orjson, as it runs on the request's thread: a tenth of the json
    module's time (measured: 4 against 33 µs a titanic row). A value it cannot encode (an
    integer beyond 64 bits) falls back to json, and a value neither can to its str():
    journaling must not fail on a row."""
    try:
        return orjson.dumps(row, default=str,
                            option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError:
        return (json.dumps(_as_json(row), default=str) + "\n").encode()


def _as_json(row: Row) -> Row:
    return {**row, "created_at": row["created_at"].isoformat()}


def _parse_line(line: str) -> Row | None:
    """A row, or None for the torn last line of a process killed mid-write (its request was
    never answered). A line written by a version whose log lacked a (nullable) column gets
    it as null."""
    try:
        row = json.loads(line)
        row["created_at"] = datetime.fromisoformat(row["created_at"])
    except (ValueError, KeyError, TypeError):
        log.warning("skipping an unreadable journal line: %.80r", line)
        return None
    return {column.name: row.get(column.name) for column in _TABLE.columns}


def _refused(exc: StatementError) -> bool:
    """A row the database will never take (a constraint, a value too long, a value that
    cannot even be sent), as opposed to a database that cannot be reached now."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    return not isinstance(exc, DBAPIError)


def _stamp() -> str:
    """Sorts by creation time; unique across processes and threads."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _brief(exc: Exception) -> str:
    """The driver's first line, without SQLAlchemy's statement and parameters."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0][:200] if text else ''}".rstrip(": ")
