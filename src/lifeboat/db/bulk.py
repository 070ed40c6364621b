"""Fast, transactional bulk loading of validated rows into a dataset table.

PostgreSQL: COPY. SQLite: executemany on the raw connection. Both run inside the caller's
transaction, so a failure anywhere leaves nothing behind, and both insert plain rows: a key
that is already there (a concurrent load of the same rows) fails the whole file on the
primary key instead of being skipped in silence.

Most of a big PostgreSQL load is the primary-key index, so (measured on 1M rows, psql COPY)
rows go in sorted by key: 12.9 s in file order, 8.9 s with each 100k chunk sorted. Into an
empty table the key is dropped for the load and rebuilt once at the end (6.7 s), as
PostgreSQL's "Populating a Database" advises; see `deferred_primary_key`.

Rows already in Arrow (`insert_table`) go to PostgreSQL as a binary COPY, which it reads
without parsing text: 1M prediction-log rows into a table with just its primary key took
3.5-3.9 s of server CPU, against 5.7-8.5 s for the same rows as CSV (three runs each).

Reading goes the other way the same road (`read_frames`): COPY TO as CSV, parsed by Arrow.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import Connection, Select, Table, exists, insert, select, text
from sqlalchemy.orm import Session

_INDEX_BUILD_MEMORY = "256MB"  # sorts a million keys in memory; the setting ends with the transaction
# Times go in as UTC text to the microsecond: SQLite keeps the text SQLAlchemy's dialect
# parses back ("2024-01-05 10:00:00.000000"); PostgreSQL needs the offset, or it would read
# the text in the session's time zone.
_TIME_ZONE_SUFFIX = {"postgresql": "+00:00", "sqlite": ""}
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # signature, flags, no extension
_COPY_TRAILER = struct.pack("!h", -1)
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, PostgreSQL's time zero, in µs after 1970
_BINARY_NUMBERS = {  # PostgreSQL type: (Arrow type cast to, big-endian layout sent)
    "smallint": (pa.int16(), ">i2"), "integer": (pa.int32(), ">i4"), "bigint": (pa.int64(), ">i8"),
    "real": (pa.float32(), ">f4"), "double precision": (pa.float64(), ">f8"),
    "boolean": (pa.uint8(), "u1"),
}
_BINARY_TIMES = ("timestamp with time zone", "timestamp without time zone")
_KEYS_IN_JSON = {  # one parameter for any number of keys: no per-key binding, no length limit
    "postgresql": "SELECT jsonb_array_elements_text(CAST(:keys AS jsonb))",
    "sqlite": "SELECT value FROM json_each(:keys)",
}


_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64()}
# COPY's CSV: NULL is a bare empty field, an empty string a quoted one; no other text is null.
_COPY_NULLS = {"null_values": [""], "strings_can_be_null": True,
               "quoted_strings_can_be_null": False}


def has_rows(session: Session, table: Table) -> bool:
    return bool(session.scalar(select(exists().select_from(table))))


@dataclass(frozen=True)
class LoadPlan:
    check_loaded: bool  # the table may hold keys of this file: look them up chunk by chunk
    key_indexed: bool   # the primary key index is live: insert in key order


@contextmanager
def deferred_primary_key(session: Session, table: Table) -> Iterator[LoadPlan]:
    """On PostgreSQL, drops the primary key for a load into an empty table, rebuilds it after.

    Dropping the key takes an exclusive lock until commit, so the emptiness check is
    repeated under it: a load that committed while this one waited is then seen. Rebuilding
    fails, and rolls the whole load back, if a duplicate got in anyway, so none ever stays.
    """
    loaded = has_rows(session, table)
    constraint = None if loaded else _primary_key_name(session, table)
    if constraint is None:
        yield LoadPlan(check_loaded=loaded, key_indexed=True)
        return
    key = _key_column(table).name
    session.execute(text(f'ALTER TABLE "{table.name}" DROP CONSTRAINT "{constraint}"'))
    yield LoadPlan(check_loaded=has_rows(session, table), key_indexed=False)
    session.execute(text(f"SET LOCAL maintenance_work_mem = '{_INDEX_BUILD_MEMORY}'"))
    session.execute(text(f'ALTER TABLE "{table.name}" ADD CONSTRAINT "{constraint}" '
                         f'PRIMARY KEY ("{key}")'))


def _primary_key_name(session: Session, table: Table) -> str | None:
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.scalar(text("SELECT conname FROM pg_constraint WHERE contype = 'p' AND "
                               "conrelid = CAST(:table AS regclass)"), {"table": f'"{table.name}"'})


def loaded_keys(session: Session, table: Table, keys: pd.Series) -> set[str]:
    """Which of `keys` the table already holds, in one query whatever their number."""
    if keys.empty:
        return set()
    key = _key_column(table)
    dialect = session.get_bind().dialect.name
    if dialect not in _KEYS_IN_JSON:
        return set(session.scalars(select(key).where(key.in_(keys.tolist()))))
    query = text(f'SELECT "{key.name}" FROM "{table.name}" WHERE "{key.name}" IN '
                 f"({_KEYS_IN_JSON[dialect]})")
    return set(session.scalars(query, {"keys": json.dumps(keys.tolist())}))


def insert_rows(session: Session, table: Table, frame: pd.DataFrame, constants: dict[str, Any],
                sort_by: str | None = None) -> int:
    """Inserts `frame` plus the `constants` columns; returns how many rows went in.

    Rows go in ordered by `sort_by`, if given: an index on it then fills page by page.
    """
    if frame.empty:
        return 0
    dialect = session.get_bind().dialect.name
    frame = frame.assign(**constants)
    if dialect == "postgresql":
        return _copy_postgres(session, table, _times_as_text(frame, dialect), sort_by)
    if dialect == "sqlite":
        frame = frame.sort_values(sort_by, kind="stable") if sort_by else frame
        return _executemany_sqlite(session, table, _times_as_text(frame, dialect))
    return session.execute(insert(table), _records(frame)).rowcount


def insert_table(session: Session, table: Table, rows: pa.Table, constants: dict[str, Any]) -> int:
    """`insert_rows` for rows already in Arrow: on PostgreSQL one binary COPY, built column by
    column (no per-row Python, no text for the server to parse); elsewhere `insert_rows`."""
    if rows.num_rows == 0:
        return 0
    if session.get_bind().dialect.name != "postgresql":
        return insert_rows(session, table, rows.to_pandas(), constants)
    data = _binary_rows(rows, constants, _column_types(session, table))
    cursor = session.connection().connection.driver_connection.cursor()
    columns = ", ".join(f'"{name}"' for name in [*rows.column_names, *constants])
    with cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN WITH (FORMAT binary)') as copy:
        copy.write(_COPY_HEADER)
        copy.write(memoryview(data))
        copy.write(_COPY_TRAILER)
    return rows.num_rows


def _binary_rows(rows: pa.Table, constants: dict[str, Any], types: dict[str, str]) -> pa.Buffer:
    """The rows in COPY's binary format, each its field count then its fields: one Arrow join
    of all the columns' pieces, with the constants' fields encoded once."""
    count = _binary_scalar(struct.pack("!h", rows.num_columns + len(constants)))
    fields = [piece for name in rows.column_names
              for piece in _binary_fields(rows[name].combine_chunks(), types[name])]
    fixed = b"".join(_binary_constant(value, types[name]) for name, value in constants.items())
    return _joined_bytes(pc.binary_join_element_wise(count, *fields, _binary_scalar(fixed),
                                                     _binary_scalar(b"")))


def _column_types(session: Session, table: Table) -> dict[str, str]:
    """The server's own type names: a binary COPY must send exactly the bytes each expects."""
    query = text("SELECT attname, format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = "
                 "CAST(:table AS regclass) AND attnum > 0 AND NOT attisdropped")
    return {name: kind for name, kind in session.execute(query, {"table": f'"{table.name}"'})}


def _binary_fields(values: pa.Array, pg_type: str) -> list[pa.Array]:
    """One column as COPY BINARY fields: each value's length (-1 for null), then its bytes."""
    data = _binary_values(values, pg_type)
    lengths = pc.binary_length(data).to_numpy(zero_copy_only=False)
    if values.null_count:
        valid = values.is_valid().to_numpy(zero_copy_only=False)
        lengths = np.where(valid, lengths, -1)
        data = pc.if_else(valid, data, _binary_scalar(b""))
    return [_fixed_width(lengths.astype(">i4")), data]


def _binary_values(values: pa.Array, pg_type: str) -> pa.Array:
    """Each value in PostgreSQL's binary form for `pg_type`: text as UTF-8, numbers big-endian,
    times as µs after 2000-01-01; a null value comes out empty."""
    if pg_type in _BINARY_NUMBERS:
        kind, layout = _BINARY_NUMBERS[pg_type]
        numbers = values.cast(kind).fill_null(0).to_numpy(zero_copy_only=False)  # safe: no overflow
        return _fixed_width(numbers.astype(layout))
    if pg_type in _BINARY_TIMES:
        micros = values.cast(pa.timestamp("us", values.type.tz)).cast(pa.int64()).fill_null(0)
        return _fixed_width((micros.to_numpy() - _PG_EPOCH_US).astype(">i8"))
    if pg_type.startswith(("character", "text", "json")):
        data = values.cast(pa.large_binary()).fill_null(_binary_scalar(b""))
        if pg_type == "jsonb":  # the binary form leads with its format version
            data = pc.binary_join_element_wise(_binary_scalar(b"\x01"), data, _binary_scalar(b""))
        return data
    raise TypeError(f"no binary COPY encoding for PostgreSQL type {pg_type}")


def _binary_constant(value: Any, pg_type: str) -> bytes:
    """A value every row shares, encoded once as its field."""
    return _joined_bytes(pc.binary_join_element_wise(
        *_binary_fields(pa.array([value]), pg_type), _binary_scalar(b""))).to_pybytes()


def _fixed_width(values: np.ndarray) -> pa.Array:
    """A binary array of each element's bytes, on the array's own memory: no copy per value."""
    raw = np.ascontiguousarray(values)
    width = raw.dtype.itemsize
    offsets = np.arange(0, (len(raw) + 1) * width, width, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_binary(), len(raw),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(raw.view(np.uint8))])


def _binary_scalar(value: bytes) -> pa.Scalar:
    return pa.scalar(value, pa.large_binary())


def _joined_bytes(values: pa.Array) -> pa.Buffer:
    """All the values' bytes back to back: the data buffer between the first and last offset."""
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset:]
    return values.buffers()[2].slice(int(offsets[0]), int(offsets[len(values)] - offsets[0]))


def read_frames(connection: Connection, query: Select, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The query's rows, `chunk_rows` at a time, with the dtypes pd.read_sql gives them.

    On PostgreSQL, COPY of the query as CSV, parsed by Arrow, without a Python object per
    value as pd.read_sql makes. The server sends each row as a message of its own, so a
    chunk is a count of messages.
    """
    if connection.dialect.name != "postgresql":
        yield from pd.read_sql(query, connection.execution_options(stream_results=True),
                               chunksize=chunk_rows)
        return
    names = [column.name for column in query.selected_columns]
    options = pa_csv.ConvertOptions(column_types={
        column.name: _arrow_type(column.type) for column in query.selected_columns}, **_COPY_NULLS)
    sql = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    connection.execute(text("SET LOCAL TimeZone = 'UTC'"))  # times as +00, whatever the server's zone
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
        while rows := _copied_rows(copy, chunk_rows):
            yield pa_csv.read_csv(
                pa.BufferReader(rows), read_options=pa_csv.ReadOptions(column_names=names),
                parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                convert_options=options).to_pandas()


def _copied_rows(copy: Any, count: int) -> bytearray:
    """The next `count` rows' CSV, copied out of the driver's buffers at once: keeping those
    buffers until a chunk is complete took 4x the CPU (1M rows: 1.6 s, not 0.4 s)."""
    rows = bytearray()
    for row in islice(copy, count):
        rows += row
    return rows


def _arrow_type(kind: Any) -> pa.DataType:
    """A column's SQLAlchemy type as Arrow parses it: times in UTC when they carry a zone."""
    python = kind.python_type
    if python is datetime:
        return pa.timestamp("us", "UTC" if kind.timezone else None)
    return _ARROW_TYPES[python]


def _key_column(table: Table):
    return next(iter(table.primary_key.columns))


def _copy_postgres(session: Session, table: Table, frame: pd.DataFrame, sort_by: str | None) -> int:
    cursor = session.connection().connection.driver_connection.cursor()
    columns = ", ".join(f'"{name}"' for name in frame.columns)
    with cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN WITH (FORMAT csv)') as copy:
        copy.write(_csv_bytes(frame, sort_by))
    return len(frame)


def _csv_bytes(frame: pd.DataFrame, sort_by: str | None) -> bytes:
    """Arrow sorts text far faster than pandas, and writes nulls as bare empty fields and
    empty strings quoted, as COPY expects.

    The chunks are combined first: pyarrow 25's CSV writer emits NUL bytes for a text
    column split into chunks some of which are empty (what pandas.concat leaves behind).
    """
    buffer = io.BytesIO()
    rows = pa.Table.from_pandas(frame, preserve_index=False).combine_chunks()
    if sort_by:
        rows = rows.take(pc.sort_indices(rows, [(sort_by, "ascending")]))
    pa_csv.write_csv(rows, buffer, pa_csv.WriteOptions(include_header=False))
    return buffer.getvalue()


def _executemany_sqlite(session: Session, table: Table, frame: pd.DataFrame) -> int:
    columns = ", ".join(f'"{name}"' for name in frame.columns)
    marks = ", ".join("?" for _ in frame.columns)
    cursor = session.connection().connection.driver_connection.cursor()
    cursor.executemany(f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})', _tuples(frame))
    return len(frame)


def _tuples(frame: pd.DataFrame) -> list[tuple]:
    plain = frame.astype(object).where(frame.notna(), None)
    return list(plain.itertuples(index=False, name=None))


def _times_as_text(frame: pd.DataFrame, dialect: str) -> pd.DataFrame:
    """Time columns written out in UTC, so no driver has to guess a time zone; naive times
    (SQLite hands those back) are UTC already.

    Arrow writes a time without its zone 16x faster than strftime (1M: 0.13 s, not 2.2 s).
    """
    times = [name for name in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[name])]
    if not times:
        return frame
    suffix = pa.scalar(_TIME_ZONE_SUFFIX[dialect])
    texts = {}
    for name in times:
        moments = frame[name]
        utc = moments.dt.tz_convert(None) if moments.dt.tz is not None else moments
        micros = pa.array(utc.to_numpy(), from_pandas=True).cast(pa.timestamp("us"), safe=False)
        text = pc.binary_join_element_wise(micros.cast(pa.string()), suffix, "")
        texts[name] = pd.Series(text.to_numpy(zero_copy_only=False), index=frame.index)
    return frame.assign(**texts)


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")
