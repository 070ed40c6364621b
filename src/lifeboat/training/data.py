"""Training data: labelled view rows, read from the database.

A dataset without events trains on the feature view's offline rows and the target column.
A dataset with events trains on snapshots: every entity at each cut-off, its inputs from
events up to the cut-off and its label from the horizon after it (features.snapshots).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, select

from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, dataset_table, ensure_dataset_table
from lifeboat.errors import LifeboatError
from lifeboat.features import ENTITY_ID, VIEW_VERSION, FeatureView, ensure_feature_table
from lifeboat.features.snapshots import labelled_snapshots

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledRows:
    features: pd.DataFrame
    labels: pd.Series
    cutoffs: pd.Series | None = None  # each row's cut-off time, for datasets with events


def labelled_features(database: Database, view: FeatureView) -> LabelledRows:
    """View rows of labelled entities and their labels, indexed by entity id in id order,
    so the same data always splits the same way."""
    if view.spec.label is not None:
        return _labelled_snapshots(database, view)
    spec = view.spec
    features, data = ensure_feature_table(database.engine, view), ensure_dataset_table(database.engine, spec)
    target = data.c[spec.target.column]
    query = (select(features.c[ENTITY_ID], *(features.c[name] for name in view.columns), target)
             .join(data, data.c[spec.entity.key] == features.c[ENTITY_ID])
             .where(features.c[VIEW_VERSION] == view.version, target.is_not(None))
             .order_by(features.c[ENTITY_ID]))
    with database.engine.connect() as connection:
        frame = pd.read_sql(query, connection, index_col=ENTITY_ID)
    if frame.empty:
        raise LifeboatError(f"no labelled {spec.name} rows with features {view.label}: run "
                            "`lifeboat ingest`, then `lifeboat features materialize`")
    _warn_if_behind(database, spec, len(frame), view)
    return LabelledRows(view.typed(frame), frame[spec.target.column].astype(int))


def _labelled_snapshots(database: Database, view: FeatureView) -> LabelledRows:
    snapshots = labelled_snapshots(database, view.spec)
    assert snapshots.labels is not None
    order = snapshots.rows.index.argsort(kind="stable")
    features = view.from_records(snapshots.rows).iloc[order]
    return LabelledRows(features, snapshots.labels.iloc[order], snapshots.cutoffs.iloc[order])


def _warn_if_behind(database: Database, spec: DatasetSpec, materialized: int, view: FeatureView) -> None:
    data = dataset_table(spec)
    with database.session() as session:
        labelled = session.scalar(select(func.count()).select_from(data)
                                  .where(data.c[spec.target.column].is_not(None))) or 0
    if labelled > materialized:
        log.warning("%d labelled %s rows have no %s features yet: training on %d; run "
                    "`lifeboat features materialize` to include them", labelled - materialized,
                    spec.name, view.label, materialized)


def data_hash(features: pd.DataFrame, labels: pd.Series) -> str:
    rows = features.assign(_label=labels)
    return hashlib.sha256(pd.util.hash_pandas_object(rows, index=True).values.tobytes()).hexdigest()
