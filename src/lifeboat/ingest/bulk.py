"""Fast, transactional bulk inserts that skip rows whose key is already in the table.

PostgreSQL: COPY into a temporary staging table, then one INSERT … ON CONFLICT DO NOTHING.
SQLite: executemany of INSERT OR IGNORE on the raw connection. Both run inside the caller's
transaction, so a failure anywhere leaves nothing behind.
"""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Table, insert
from sqlalchemy.orm import Session


def insert_new_rows(session: Session, table: Table, frame: pd.DataFrame) -> int:
    """Inserts the rows of `frame` (columns named as the table's) and returns how many were new."""
    if frame.empty:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return _copy_postgres(session, table, frame)
    if dialect == "sqlite":
        return _executemany_sqlite(session, table, frame)
    return session.execute(insert(table), _records(frame)).rowcount


def _copy_postgres(session: Session, table: Table, frame: pd.DataFrame) -> int:
    columns = ", ".join(f'"{name}"' for name in frame.columns)
    staging = f"lifeboat_staging_{table.name}"
    key = ", ".join(f'"{column.name}"' for column in table.primary_key.columns)
    cursor = session.connection().connection.driver_connection.cursor()
    cursor.execute(f'CREATE TEMP TABLE IF NOT EXISTS "{staging}" '
                   f'(LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DROP')
    cursor.execute(f'TRUNCATE "{staging}"')
    with cursor.copy(f'COPY "{staging}" ({columns}) FROM STDIN WITH (FORMAT csv)') as copy:
        copy.write(_csv_bytes(frame))
    cursor.execute(f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM "{staging}" '
                   f"ON CONFLICT ({key}) DO NOTHING")
    return cursor.rowcount


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    """Arrow writes nulls as bare empty fields and empty strings quoted, as COPY expects."""
    buffer = io.BytesIO()
    table = pa.Table.from_pandas(_times_as_text(frame, "%Y-%m-%d %H:%M:%S.%f+00:00"),
                                 preserve_index=False)
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
    """Plain Python values; times as the text SQLAlchemy's SQLite dialect stores and parses."""
    frame = _times_as_text(frame, "%Y-%m-%d %H:%M:%S.%f")
    plain = frame.astype(object).where(frame.notna(), None)
    return list(plain.itertuples(index=False, name=None))


def _times_as_text(frame: pd.DataFrame, layout: str) -> pd.DataFrame:
    """UTC times written out, so no driver has to guess a time zone."""
    frame = frame.copy()
    for name in frame.select_dtypes(include=["datetimetz"]).columns:
        frame[name] = frame[name].dt.tz_convert("UTC").dt.strftime(layout)
    return frame


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")
