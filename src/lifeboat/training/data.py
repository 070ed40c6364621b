"""Training data: the dataset's loaded rows, read from the database."""

from __future__ import annotations

import hashlib

import pandas as pd
from sqlalchemy import select

from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, dataset_table
from lifeboat.errors import LifeboatError


def labelled_rows(database: Database, spec: DatasetSpec) -> pd.DataFrame:
    """Rows with a known label, in key order so the same data always splits the same way."""
    table = dataset_table(spec)
    key, target = table.c[spec.entity.key], table.c[spec.target.column]
    query = select(*(table.c[name] for name in spec.columns)).where(target.is_not(None)).order_by(key)
    with database.engine.connect() as connection:
        frame = pd.read_sql(query, connection)
    if frame.empty:
        raise LifeboatError(f"no labelled {spec.name} rows in the database: run `lifeboat ingest` first")
    frame[spec.target.column] = frame[spec.target.column].astype(int)
    return frame


def data_hash(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()
