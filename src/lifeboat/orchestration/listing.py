"""The latest job runs as `lifeboat jobs` lists them.

On the embedded SQLite database they are read with `sqlite3`: importing SQLAlchemy and
mapping the tables took longer (measured: 0.6 s of CPU of the command's 1.2 s) than the
second a listing may take. Any other database is read through `recent_runs`.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lifeboat.config import Settings, sqlite_file


@dataclass(frozen=True)
class ListedRun:
    id: int
    job: str
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, Any] | None
    error: str | None

    @property
    def seconds(self) -> float | None:
        """How long it took; None while it runs."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def listed_runs(settings: Settings, dataset: str, limit: int) -> list[ListedRun]:
    """Newest first, as `recent_runs` orders them."""
    path = sqlite_file(settings.db_url)
    if path is None:
        return _through_sqlalchemy(settings, dataset, limit)
    if not path.exists():
        return []
    try:
        rows = _read(path, dataset, limit)
    except sqlite3.Error:  # not migrated yet, say: SQLAlchemy's error names it
        return _through_sqlalchemy(settings, dataset, limit)
    return [ListedRun(number, job, trigger, status, _utc(started), _utc(finished),
                      None if counts is None else json.loads(counts), error)
            for number, job, trigger, status, started, finished, counts, error in rows]


def _read(path: Path, dataset: str, limit: int) -> list[tuple]:
    store = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return store.execute(
            "SELECT id, job, trigger, status, started_at, finished_at, counts, error "
            "FROM job_runs WHERE dataset = ? ORDER BY started_at DESC, id DESC LIMIT ?",
            (dataset, limit)).fetchall()
    finally:
        store.close()


def _through_sqlalchemy(settings: Settings, dataset: str, limit: int) -> list[ListedRun]:
    from lifeboat.db import Database, as_utc
    from lifeboat.orchestration.runs import recent_runs

    database = Database(settings.db_url)
    try:
        return [ListedRun(run.id, run.job, run.trigger, run.status, as_utc(run.started_at),
                          run.finished_at and as_utc(run.finished_at), run.counts, run.error)
                for run in recent_runs(database, dataset, limit)]
    finally:
        database.dispose()


def _utc(stored: str | None) -> datetime | None:
    """SQLAlchemy keeps a SQLite timestamp as ISO text in UTC, without its offset."""
    if stored is None:
        return None
    moment = datetime.fromisoformat(stored)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
