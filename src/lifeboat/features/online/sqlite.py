"""The embedded online store: a SQLite file, the zero-setup default (`sqlite:///path`)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path

from lifeboat.features.online.store import OnlineStore, ViewKey

SQLITE_PREFIX = "sqlite:///"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_vectors (
    view TEXT NOT NULL, entity_id TEXT NOT NULL, vector BLOB NOT NULL, expires_at REAL,
    PRIMARY KEY (view, entity_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS online_views (
    view TEXT PRIMARY KEY, meta BLOB NOT NULL, expires_at REAL
) WITHOUT ROWID;
"""
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_READ_VECTORS = ("SELECT entity_id, vector FROM online_vectors WHERE view = ? "
                 f"AND entity_id IN (SELECT value FROM json_each(?)) AND {_LIVE}")
_READ_META = f"SELECT meta FROM online_views WHERE view = ? AND {_LIVE}"


class SqliteOnlineStore(OnlineStore):
    """A SQLite file in WAL mode, with one connection for reads and one for writes.

    A write is one transaction on the writing connection: lookups see all of it or none of
    it, and under WAL the reading connection goes on answering meanwhile, in this process and
    others. Measured on a million vectors: a commit every 10,000 rows managed 15,600 rows/s
    (each commit set off a checkpoint); one transaction, batches sorted by key and a 64 MB
    page cache 90,000 rows/s. Reads share their connection behind a lock: connections per
    thread were measured no faster (4 reader threads, with and without a writer), the GIL and
    the per-row lookup dominate. A TTL is an `expires_at` column filtered on read.
    """

    outages = (sqlite3.DatabaseError, OSError)

    def __init__(self, path: Path, ttl_seconds: int | None = None) -> None:
        super().__init__(f"{SQLITE_PREFIX}{path}", ttl_seconds)
        self._read_lock, self._write_lock = threading.Lock(), threading.Lock()
        with self._reachable():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = _connect(path)
            self._writer.executescript(_SCHEMA)
            self._reader = _connect(path)

    def close(self) -> None:
        with self._read_lock, self._write_lock:
            self._reader.close()
            self._writer.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._write_lock, self._writer:
            yield

    def _expires_at(self) -> float | None:
        return None if self.ttl_seconds is None else time.time() + self.ttl_seconds

    def _write_vectors(self, key: ViewKey, entity_ids: list[str], vectors: list[bytes]) -> None:
        expires_at, prefix = self._expires_at(), key.prefix
        # Pages filled in key order: a third faster, measured.
        packed = sorted(zip(entity_ids, vectors, strict=True), key=itemgetter(0))
        self._writer.executemany("INSERT OR REPLACE INTO online_vectors VALUES (?, ?, ?, ?)",
                                 [(prefix, entity_id, vector, expires_at)
                                  for entity_id, vector in packed])

    def _write_meta(self, key: ViewKey, meta: bytes) -> None:
        self._writer.execute("INSERT OR REPLACE INTO online_views VALUES (?, ?, ?)",
                             (key.prefix, meta, self._expires_at()))

    def _read_vectors(self, key: ViewKey, entity_ids: Sequence[str]) -> list[bytes | None]:
        with self._read_lock:
            found = dict(self._reader.execute(
                _READ_VECTORS, (key.prefix, json.dumps(list(entity_ids)), time.time())))
        return [found.get(entity_id) for entity_id in entity_ids]

    def _read_meta(self, key: ViewKey) -> bytes | None:
        with self._read_lock:
            row = self._reader.execute(_READ_META, (key.prefix, time.time())).fetchone()
        return None if row is None else row[0]

    def _ping(self) -> None:
        with self._read_lock:
            self._reader.execute("SELECT 1 FROM online_views LIMIT 1").fetchall()

    def _claim(self, name: str, seconds: int) -> bool:
        """Always granted: the file is local to one host, and a write is one transaction,
        so two refills at once end as one."""
        return True


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # a power cut may lose the last write
    connection.execute("PRAGMA cache_size=-65536")  # 64 MB, KiB when negative
    connection.execute("PRAGMA journal_size_limit=67108864")  # WAL trimmed to 64 MB after use
    return connection
