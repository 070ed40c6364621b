"""Entities as of a cut-off time, for datasets with an event log (`events` in the spec).

The entity table and the event log are read from the database; `aggregates` computes each
entity's inputs from its events up to the cut-off only. Training takes several cut-offs, each
labelled by what happened within the horizon after it; serving and the stores take one, the
newest event's time: the data's own "now", so a model is never asked about a gap longer than
any it was trained on just because the last file landed a while ago.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from lifeboat.datasets import DatasetSpec, TableSpec
from lifeboat.db import LOADED_AT_COLUMN, Database, as_utc, ensure_dataset_table
from lifeboat.errors import LifeboatError
from lifeboat.features.aggregates import CUTOFF, cutoff_times, future_labels, point_in_time


@dataclass(frozen=True)
class Snapshots:
    """Entity rows at cut-offs: raw fields and aggregates, each row's cut-off, its label."""

    rows: pd.DataFrame   # indexed `<entity key>@<cut-off date>`, with each row's CUTOFF
    labels: pd.Series | None
    loaded_until: datetime | None = None  # the newest load time of a source row read

    @property
    def cutoffs(self) -> pd.Series:
        return self.rows[CUTOFF]


def labelled_snapshots(database: Database, spec: DatasetSpec,
                       loaded_until: datetime | None = None) -> Snapshots:
    """Every entity at each training cut-off, labelled by the horizon after it, from the
    source rows loaded up to `loaded_until` (all of them when None)."""
    sources = read_sources(database, spec, loaded_until)
    entities, events = sources.entities, sources.events
    cutoffs = cutoff_times(spec, newest_event_time(spec, events))
    frame = point_in_time(spec, entities, events, cutoffs)
    labels = future_labels(spec, events, frame).astype(int)
    return _snapshots(spec, frame, labels, sources.loaded_until)


def current_snapshot(database: Database, spec: DatasetSpec) -> Snapshots:
    """Every entity as of the newest event: what the stores hold and serving scores."""
    sources = read_sources(database, spec)
    frame = point_in_time(spec, sources.entities, sources.events,
                          [newest_event_time(spec, sources.events)])
    return _snapshots(spec, frame, None)


@dataclass(frozen=True)
class Sources:
    entities: pd.DataFrame
    events: pd.DataFrame
    loaded_until: datetime | None  # the newest load time among the rows read


def read_sources(database: Database, spec: DatasetSpec,
                 loaded_until: datetime | None = None) -> Sources:
    """The entities and their events, loaded up to `loaded_until` when given."""
    assert spec.events is not None, "snapshots are for datasets with an event log"
    entities, entities_loaded = _read(database, spec, list(spec.columns), loaded_until)
    events, events_loaded = _read(database, spec.events, _event_columns(spec), loaded_until)
    if entities.empty or events.empty:
        raise LifeboatError(f"{spec.name} needs both {spec.table} and {spec.events.table} rows: "
                            "run `lifeboat ingest` on both files")
    return Sources(entities, events, max(entities_loaded, events_loaded))


def newest_event_time(spec: DatasetSpec, events: pd.DataFrame) -> pd.Timestamp:
    assert spec.events is not None
    return events[spec.events.time].max()


def newest_event_loaded(database: Database, spec: DatasetSpec) -> datetime | None:
    """The newest event's time in the database (None before any): how far the data has
    seen, so which label periods are over."""
    assert spec.events is not None, "events are for datasets with an event log"
    table = ensure_dataset_table(database.engine, spec.events)
    with database.engine.connect() as connection:
        newest = connection.scalar(select(func.max(table.c[spec.events.time])))
    return None if newest is None else as_utc(newest)


_KEYS_PER_QUERY = 1000  # one IN list's keys: SQLite bounds the values a statement binds


def labels_after(database: Database, spec: DatasetSpec, entities: Sequence[str],
                 moments: Sequence[datetime]) -> np.ndarray:
    """Each entity's label after its moment, by the events loaded, as training labels a
    snapshot at a cut-off (`future_labels`): 1 when a label event follows within the
    horizon. Only these entities' events within the periods looked at are read."""
    assert spec.label is not None, "labels after a moment need the spec's label"
    key = spec.entity.key
    asked = pd.DataFrame({key: list(entities), CUTOFF: pd.to_datetime(list(moments), utc=True)})
    horizon = pd.Timedelta(days=spec.label.horizon_days)
    events = _events_of(database, spec, asked[key].unique().tolist(), asked[CUTOFF].min(),
                        asked[CUTOFF].max() + horizon)
    return future_labels(spec, events, asked).to_numpy()


def _events_of(database: Database, spec: DatasetSpec, keys: list[str], after: pd.Timestamp,
               until: pd.Timestamp) -> pd.DataFrame:
    """The events of these entities timed in (after, until]: a range of the (join key,
    time) index per key."""
    assert spec.events is not None
    table = ensure_dataset_table(database.engine, spec.events)
    columns = _event_columns(spec)
    join, time = table.c[spec.events.join_key], table.c[spec.events.time]
    query = (select(*(table.c[name] for name in columns))
             .where(time > after.to_pydatetime(), time <= until.to_pydatetime()))
    with database.engine.connect() as connection:
        parts = [pd.read_sql(query.where(join.in_(keys[first:first + _KEYS_PER_QUERY])),
                             connection) for first in range(0, len(keys), _KEYS_PER_QUERY)]
    return _with_times(pd.concat(parts, ignore_index=True), spec.events)


def _event_columns(spec: DatasetSpec) -> list[str]:
    """The event columns anything reads: the join, the time, and what aggregates and the
    label filter or add up. Leaving the rest in the database halves what a big log costs."""
    assert spec.events is not None
    named = [spec.events.join_key, spec.events.time]
    for aggregate in spec.aggregates.values():
        named += [*aggregate.where, *([aggregate.column] if aggregate.column else [])]
    if spec.label is not None:
        named += [*spec.label.where, spec.label.column]
    return [name for name in dict.fromkeys(named) if name in spec.events.columns]


def _read(database: Database, source: TableSpec, columns: list[str],
          loaded_until: datetime | None) -> tuple[pd.DataFrame, datetime | None]:
    table = ensure_dataset_table(database.engine, source)
    query = select(*(table.c[name] for name in (*columns, LOADED_AT_COLUMN)))
    if loaded_until is not None:
        query = query.where(table.c[LOADED_AT_COLUMN] <= loaded_until)
    with database.engine.connect() as connection:
        frame = _with_times(pd.read_sql(query, connection), source)
    newest = pd.to_datetime(frame.pop(LOADED_AT_COLUMN), utc=True).max()
    return frame, None if pd.isna(newest) else newest.to_pydatetime()


def _with_times(frame: pd.DataFrame, source: TableSpec) -> pd.DataFrame:
    """Time columns as UTC times (SQLite hands back naive text)."""
    for name in frame.columns:
        if name in source.columns and source.columns[name].type == "datetime":
            frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


def _snapshots(spec: DatasetSpec, frame: pd.DataFrame, labels: pd.Series | None,
               loaded_until: datetime | None = None) -> Snapshots:
    key = frame[spec.entity.key].astype(str)
    index = key + "@" + frame[CUTOFF].dt.strftime("%Y-%m-%d")
    frame = frame.set_axis(index.to_numpy())
    if labels is not None:
        labels = pd.Series(labels.to_numpy(), index=frame.index, name=spec.target.column)
    return Snapshots(frame, labels, loaded_until)
