"""Fast, transactional bulk inserts that skip rows whose key is already in the table.

PostgreSQL: COPY of the rows whose keys are new. SQLite: executemany of INSERT OR IGNORE on
the raw connection. Both run inside the caller's
transaction, so a failure anywhere leaves nothing behind.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

_PG_TIME = "%Y-%m-%d %H:%M:%S.%f+00:00"
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # the text SQLAlchemy's SQLite dialect stores and parses


def insert_new_rows(session: Session, table: Table, frame: pd.DataFrame,
                    constants: dict[str, Any]) -> int:
    """Inserts `frame` plus the `constants` columns; returns how many rows were new.

    Constants (the run id, the load time) are formatted once per call, not once per row.
    """
    if frame.empty:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return _copy_postgres(session, table, frame.assign(**_as_text(constants, _PG_TIME)))
    if dialect == "sqlite":
        return _executemany_sqlite(session, table, frame.assign(**_as_text(constants, _SQLITE_TIME)))
    return session.execute(insert(table), _records(frame.assign(**constants))).rowcount


def _copy_postgres(session: Session, table: Table, frame: pd.DataFrame) -> int:
    """COPY straight into the table, after leaving out keys it already holds.

    Cheaper than staging + INSERT … ON CONFLICT (measured: several times faster on a
    million rows). A concurrent load of the same key makes COPY fail on the primary key,
    which rolls the whole file back: never a duplicate, and a rerun loads it.
    """
    key = next(iter(table.primary_key.columns)).name
    cursor = session.connection().connection.driver_connection.cursor()
    present: set[str] = set()
    if cursor.execute(f'SELECT EXISTS (SELECT 1 FROM "{table.name}")').fetchone()[0]:
        cursor.execute(f'SELECT "{key}" FROM "{table.name}" WHERE "{key}" = ANY(%s)',
                       (frame[key].tolist(),))
        present = {row[0] for row in cursor}
    new = frame[~frame[key].isin(present)] if present else frame
    columns = ", ".join(f'"{name}"' for name in new.columns)
    with cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN WITH (FORMAT csv)') as copy:
        copy.write(_csv_bytes(new))
    return len(new)


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    """Arrow writes nulls as bare empty fields and empty strings quoted, as COPY expects."""
    buffer = io.BytesIO()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False))
    return buffer.getvalue()


def _executemany_sqlite(session: Session, table: Table, frame: pd.DataFrame) -> int:
    columns = ", ".join(f'"{name}"' for name in frame.columns)
    marks = ", ".join("?" for _ in frame.columns)
    cursor = session.connection().connection.driver_connection.cursor()
    cursor.executemany(f'INSERT OR IGNORE INTO "{table.name}" ({columns}) VALUES ({marks})',
                       _tuples(frame))
    return cursor.rowcount


def _tuples(frame: pd.DataFrame) -> list[tuple]:
    plain = frame.astype(object).where(frame.notna(), None)
    return list(plain.itertuples(index=False, name=None))


def _as_text(constants: dict[str, Any], time_layout: str) -> dict[str, Any]:
    """UTC times written out, so no driver has to guess a time zone."""
    return {name: value.astimezone(UTC).strftime(time_layout) if isinstance(value, datetime)
            else value for name, value in constants.items()}


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")
