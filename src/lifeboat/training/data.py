"""Training data: labelled view rows, read from the database, each with a key and a weight.

A dataset without events trains on the feature view's offline rows and the target column.
A dataset with events trains on snapshots: every entity at each cut-off, its inputs from
events up to the cut-off and its label from the horizon after it (features.snapshots).

Which rows are held out never changes from one training to the next: a row is in the
evaluation set by its key alone (`in_evaluation_set`), so no model is ever trained on a
row another model is judged on, and the promotion gate can compare any two fairly. A
dataset with a time split holds out its latest cut-off instead: later than anything a
model before it was trained on.

Labelled predictions are training rows too: an outcome that came back for a logged
prediction (through /feedback, or derived from later events) joins the feature-view row the
prediction was scored on. Each is keyed `prediction:<id>`, counts as `feedback_weight`
historical rows, and falls in the evaluation set by its key like any other row, so the gate
judges models on today's outcomes too.

Every row read was loaded (or its outcome received) up to a moment (`DataSeen`): a model
records it, and `as_of` reads exactly the data that model saw again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from lifeboat.datasets import DatasetSpec
from lifeboat.db import (
    LOADED_AT_COLUMN,
    Database,
    Feedback,
    Prediction,
    as_utc,
    dataset_table,
    ensure_dataset_table,
)
from lifeboat.errors import LifeboatError
from lifeboat.features import (
    ENTITY_ID,
    VIEW_VERSION,
    FeatureView,
    ensure_feature_table,
    labelled_snapshots,
)

log = logging.getLogger(__name__)
_TAG = "data."  # the MLflow run tags that say what a model saw


@dataclass(frozen=True)
class DataSeen:
    """How far the data a model was trained on reaches: rows loaded up to `loaded_until`,
    outcomes of predictions received up to `feedback_until`."""

    loaded_until: datetime | None = None
    feedback_until: datetime | None = None

    def tags(self) -> dict[str, str]:
        return {f"{_TAG}loaded_until": _stamp(self.loaded_until),
                f"{_TAG}feedback_until": _stamp(self.feedback_until)}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> DataSeen | None:
        """What a registered version saw, from its run's tags; None for a version trained
        before they were recorded."""
        if f"{_TAG}loaded_until" not in tags:
            return None
        return cls(_moment(tags[f"{_TAG}loaded_until"]),
                   _moment(tags.get(f"{_TAG}feedback_until", "")))


PREDICTION_KEY = "prediction:"  # the key of a labelled prediction: this, then its id


@dataclass(frozen=True)
class LabelledRows:
    features: pd.DataFrame  # view rows, indexed by each row's key
    labels: pd.Series
    cutoffs: pd.Series | None = None  # each row's cut-off time, for datasets with events
    weights: np.ndarray | None = None  # how many rows each counts as; None: one each
    seen: DataSeen = DataSeen()
    predicted: np.ndarray | None = None  # which rows are labelled predictions; None: none

    @property
    def from_predictions(self) -> np.ndarray:
        return (np.zeros(len(self.labels), dtype=bool) if self.predicted is None
                else self.predicted)

    @property
    def keys(self) -> np.ndarray:
        return self.features.index.to_numpy(dtype=object)

    @property
    def row_weights(self) -> np.ndarray:
        return np.ones(len(self.labels), dtype=np.int64) if self.weights is None else self.weights

    def subset(self, rows: np.ndarray) -> LabelledRows:
        return replace(self, features=self.features[rows], labels=self.labels[rows],
                       cutoffs=None if self.cutoffs is None else self.cutoffs[rows],
                       weights=None if self.weights is None else self.weights[rows],
                       predicted=None if self.predicted is None else self.predicted[rows])

    def with_predictions(self, outcomes: LabelledRows) -> LabelledRows:
        """These rows, then the labelled predictions `outcomes` holds."""
        if outcomes.labels.empty:
            return self
        cutoffs = (None if self.cutoffs is None else
                   pd.concat([self.cutoffs, pd.Series(pd.NaT, index=outcomes.features.index,
                                                      dtype=self.cutoffs.dtype)]))
        return LabelledRows(
            pd.concat([self.features, outcomes.features]),
            pd.concat([self.labels, outcomes.labels]), cutoffs,
            np.r_[self.row_weights, outcomes.row_weights],
            DataSeen(self.seen.loaded_until, outcomes.seen.feedback_until),
            np.r_[self.from_predictions, np.ones(len(outcomes.labels), dtype=bool)])

    def expanded(self) -> tuple[pd.DataFrame, pd.Series, np.ndarray | None]:
        """Each row repeated by its weight, with its key as the group that keeps a row's
        copies in one cross-validation fold (SMOTE resamples rows, so weights cannot be
        handed to the classifier as sample weights); no groups when no row repeats."""
        if (self.row_weights == 1).all():
            return self.features, self.labels, None
        repeats = np.repeat(np.arange(len(self.labels)), self.row_weights)
        return (self.features.iloc[repeats], self.labels.iloc[repeats],
                self.keys[repeats])

    def data_hash(self) -> str:
        """SHA-256 of the rows, labels and weights in key order: the same data, the same hash."""
        rows = self.features.assign(_label=self.labels, _weight=self.row_weights).sort_index()
        return hashlib.sha256(pd.util.hash_pandas_object(rows, index=True).values.tobytes()
                              ).hexdigest()


def in_evaluation_set(spec: DatasetSpec, keys: np.ndarray) -> np.ndarray:
    """Whether each row belongs to the dataset's frozen evaluation set: decided by a hash of
    the dataset's name and the row's key, so a row is held out by every training or by none,
    `training.test_size` of them in all."""
    salted = pd.Series([f"{spec.name}:{key}" for key in keys], dtype=object)
    hashed = pd.util.hash_pandas_object(salted, index=False).to_numpy()
    return hashed < np.uint64(spec.training.test_size * 2.0 ** 64)


def training_data(database: Database, view: FeatureView, feedback_weight: int,
                  as_of: DataSeen | None = None) -> LabelledRows:
    """Everything a model learns from: the dataset's labelled rows, then the labelled
    predictions, each counting as `feedback_weight` rows. With `as_of`, only what was
    loaded and received up to its moments."""
    outcomes = labelled_predictions(database, view, feedback_weight,
                                    as_of.feedback_until if as_of else None,
                                    bounded=as_of is not None)
    return labelled_features(database, view, as_of).with_predictions(outcomes)


def labelled_predictions(database: Database, view: FeatureView, weight: int,
                         received_until: datetime | None = None,
                         bounded: bool = False) -> LabelledRows:
    """Logged predictions whose outcome came back, as the view rows they were scored on
    (`FeatureView.logged_rows`), in id order; up to `received_until` when `bounded` (a
    version that saw none bounds them all out)."""
    query = (select(Prediction.id, Prediction.features, Prediction.input, Feedback.actual,
                    Feedback.received_at)
             .join(Feedback, Feedback.prediction_id == Prediction.id)
             .where(Prediction.dataset == view.spec.name).order_by(Prediction.id))
    if bounded:
        if received_until is None:
            return _no_outcomes(view)
        query = query.where(Feedback.received_at <= received_until)
    with database.session() as session:
        found = session.execute(query).all()
    if not found:
        return _no_outcomes(view)
    keys = [f"{PREDICTION_KEY}{row.id}" for row in found]
    rows = view.logged_rows([row.features for row in found], [row.input for row in found])
    newest = max(as_utc(row.received_at) for row in found)
    return LabelledRows(rows.set_axis(keys), pd.Series([row.actual for row in found], index=keys,
                                                       dtype=int, name=view.spec.target.column),
                        weights=np.full(len(found), weight, dtype=np.int64),
                        seen=DataSeen(feedback_until=newest))


def _no_outcomes(view: FeatureView) -> LabelledRows:
    return LabelledRows(view.typed(pd.DataFrame(columns=list(view.columns))),
                        pd.Series(dtype=int, name=view.spec.target.column),
                        weights=np.empty(0, dtype=np.int64))


def labelled_features(database: Database, view: FeatureView,
                      as_of: DataSeen | None = None) -> LabelledRows:
    """View rows of labelled entities and their labels, indexed by key in key order, so the
    same data always gives the same rows in the same order. With `as_of`, only the rows
    loaded up to its moment."""
    loaded_until = as_of.loaded_until if as_of else None
    if view.spec.label is not None:
        return _labelled_snapshots(database, view, loaded_until)
    spec = view.spec
    features, data = ensure_feature_table(database.engine, view), ensure_dataset_table(database.engine, spec)
    target, loaded_at = data.c[spec.target.column], data.c[LOADED_AT_COLUMN]
    query = (select(features.c[ENTITY_ID], *(features.c[name] for name in view.columns), target,
                    loaded_at)
             .join(data, data.c[spec.entity.key] == features.c[ENTITY_ID])
             .where(features.c[VIEW_VERSION] == view.version, target.is_not(None))
             .order_by(features.c[ENTITY_ID]))
    if loaded_until is not None:
        query = query.where(loaded_at <= loaded_until)
    with database.engine.connect() as connection:
        frame = pd.read_sql(query, connection, index_col=ENTITY_ID)
    if frame.empty:
        raise LifeboatError(f"no labelled {spec.name} rows with features {view.label}: run "
                            "`lifeboat ingest`, then `lifeboat features materialize`")
    _warn_if_behind(database, spec, len(frame), view)
    newest = pd.to_datetime(frame[LOADED_AT_COLUMN], utc=True).max().to_pydatetime()
    return LabelledRows(view.typed(frame), frame[spec.target.column].astype(int),
                        seen=DataSeen(loaded_until=newest))


def _labelled_snapshots(database: Database, view: FeatureView,
                        loaded_until: datetime | None) -> LabelledRows:
    snapshots = labelled_snapshots(database, view.spec, loaded_until)
    assert snapshots.labels is not None
    order = snapshots.rows.index.argsort(kind="stable")
    features = view.from_records(snapshots.rows).iloc[order]
    return LabelledRows(features, snapshots.labels.iloc[order], snapshots.cutoffs.iloc[order],
                        seen=DataSeen(loaded_until=snapshots.loaded_until))


def _warn_if_behind(database: Database, spec: DatasetSpec, materialized: int, view: FeatureView) -> None:
    data = dataset_table(spec)
    with database.session() as session:
        labelled = session.scalar(select(func.count()).select_from(data)
                                  .where(data.c[spec.target.column].is_not(None))) or 0
    if labelled > materialized:
        log.warning("%d labelled %s rows have no %s features yet: training on %d; run "
                    "`lifeboat features materialize` to include them", labelled - materialized,
                    spec.name, view.label, materialized)


def new_labels_since(database: Database, spec: DatasetSpec, seen: DataSeen) -> bool:
    """Whether labelled data arrived after `seen`: a row loaded into any source (a new
    entity, a new event, which labels snapshots), or an outcome of a prediction received."""
    loaded, received = newest_load(database, spec), newest_outcome(database, spec)
    return (_after(loaded, seen.loaded_until) or _after(received, seen.feedback_until))


def newest_outcome(database: Database, spec: DatasetSpec) -> datetime | None:
    with database.session() as session:
        newest = session.scalar(select(func.max(Feedback.received_at))
                                .join(Prediction, Prediction.id == Feedback.prediction_id)
                                .where(Prediction.dataset == spec.name))
    return None if newest is None else as_utc(newest)


def _after(moment: datetime | None, bound: datetime | None) -> bool:
    return moment is not None and (bound is None or moment > as_utc(bound))


def newest_load(database: Database, spec: DatasetSpec) -> datetime | None:
    """When any source of the dataset (the entities or their events) last got a row."""
    newest = []
    for source in spec.sources:
        table = ensure_dataset_table(database.engine, source)
        with database.session() as session:
            newest.append(session.scalar(select(func.max(table.c[LOADED_AT_COLUMN]))))
    known = [as_utc(moment) for moment in newest if moment is not None]
    return max(known) if known else None


def _stamp(moment: datetime | None) -> str:
    return "" if moment is None else pd.Timestamp(moment).isoformat()


def _moment(text: str) -> datetime | None:
    return pd.Timestamp(text).to_pydatetime() if text else None
