"""Key ranges: how a Spark job shares a database table among its tasks without a JDBC driver.

The driver cuts the table's primary key into ranges of about equal row counts, with one
`ntile` over the key's index; each task then reads its own range through Lifeboat's own
`Database` (SQLAlchemy, psycopg or SQLite), which Spark cannot reach without a driver jar.
Ranges are bounded by keys, compared in the key column's own collation both when they are
cut and when they are read, so together they hold every row exactly once. A range is open
at both ends of the table, so a row loaded between cutting and reading is not lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Column, ColumnElement, Table, and_, func, literal_column, select, true

from lifeboat.db import Database

ROWS_PER_RANGE = 100_000  # one task's rows: a few tens of MB of pandas at most


@dataclass(frozen=True)
class KeyRange:
    """Keys above `low` (from the first when None) up to and including `high` (to the last
    when None)."""

    low: str | None
    high: str | None

    def holds(self, key: Column) -> ColumnElement[bool]:
        bounds = []
        if self.low is not None:
            bounds.append(key > self.low)
        if self.high is not None:
            bounds.append(key <= self.high)
        return and_(true(), *bounds)


def key_ranges(database: Database, key: Column, least: int,
               rows_per_range: int = ROWS_PER_RANGE) -> list[KeyRange]:
    """At least `least` ranges (so every executor has work), more when the table is big."""
    with database.engine.connect() as connection:
        rows = connection.scalar(select(func.count()).select_from(key.table))
        parts = max(least, math.ceil(rows / rows_per_range))
        part = func.ntile(parts).over(order_by=key).label("part")
        numbered = select(key.label("key"), part).subquery()
        highs = connection.scalars(select(func.max(numbered.c.key)).group_by(numbered.c.part)
                                   .order_by(numbered.c.part)).all()
    bounds = [None, *highs[:-1], None]
    return [KeyRange(low, high) for low, high in zip(bounds, bounds[1:], strict=False)]


def row_position(table: Table, dialect: str) -> ColumnElement:
    """Where a row sits in the table's storage, as text: the order a read without ORDER BY
    returns rows in (PostgreSQL's ctid, SQLite's rowid). The local engine breaks ties in
    event time by that order, so the spark engine must too."""
    if dialect == "postgresql":
        return literal_column(f'CAST("{table.name}".ctid AS text)')
    return literal_column(f'CAST("{table.name}".rowid AS text)')


def positions(texts: pd.Series) -> np.ndarray:
    """`row_position` texts as sortable integers: PostgreSQL's (page,item) as page·2¹⁶+item."""
    if texts.empty:
        return np.empty(0, np.int64)
    parts = texts.str.strip("()").str.split(",", expand=True).astype(np.int64)
    if parts.shape[1] == 1:
        return parts[0].to_numpy()
    return (parts[0] * 65_536 + parts[1]).to_numpy()
