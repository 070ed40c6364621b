"""Entities as of a cut-off time, for datasets with an event log (`events` in the spec).

The entity table and the event log are read from the database; `aggregates` computes each
entity's inputs from its events up to the cut-off only. Training takes several cut-offs, each
labelled by what happened within the horizon after it; serving and the stores take one, the
newest event's time: the data's own "now", so a model is never asked about a gap longer than
any it was trained on just because the last file landed a while ago.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import select

from lifeboat.datasets import DatasetSpec, TableSpec
from lifeboat.db import Database, ensure_dataset_table
from lifeboat.db.tables import LOADED_AT_COLUMN
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
        frame = pd.read_sql(query, connection)
    for name in columns:
        if source.columns[name].type == "datetime":
            frame[name] = pd.to_datetime(frame[name], utc=True)
    newest = pd.to_datetime(frame.pop(LOADED_AT_COLUMN), utc=True).max()
    return frame, None if pd.isna(newest) else newest.to_pydatetime()


def _snapshots(spec: DatasetSpec, frame: pd.DataFrame, labels: pd.Series | None,
               loaded_until: datetime | None = None) -> Snapshots:
    key = frame[spec.entity.key].astype(str)
    index = key + "@" + frame[CUTOFF].dt.strftime("%Y-%m-%d")
    frame = frame.set_axis(index.to_numpy())
    if labels is not None:
        labels = pd.Series(labels.to_numpy(), index=frame.index, name=spec.target.column)
    return Snapshots(frame, labels, loaded_until)
