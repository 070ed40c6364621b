"""The one feature pipeline: view rows → learned features → model-ready matrix.

Each dataset's builder names its feature view (record-local, stored offline and online)
and the learned transformer that sits on the view inside the model. Training fits the
model pipeline on view rows; serving runs the same fitted object on view rows computed
from a request or looked up by entity id, so a feature can never be computed two ways.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lifeboat.datasets import DatasetSpec
from lifeboat.errors import DatasetSpecError
from lifeboat.features.columns_view import columns_of, spec_columns
from lifeboat.features.titanic import TitanicFeatures
from lifeboat.features.titanic_view import PROFILE_COLUMNS, passenger_profile
from lifeboat.features.views import ColumnKind, Compute, FeatureView, view_version


@dataclass(frozen=True)
class Builder:
    view: Compute
    view_columns: Mapping[str, ColumnKind]
    learned: type[BaseEstimator] | None  # None: the view's rows go straight to preprocessing


BUILDERS: dict[str, Callable[[DatasetSpec], Builder]] = {
    "titanic": lambda _spec: Builder(passenger_profile, PROFILE_COLUMNS, TitanicFeatures),
    "columns": lambda spec: Builder(spec_columns, columns_of(spec), None),
}


def _builder(spec: DatasetSpec) -> Builder:
    try:
        return BUILDERS[spec.features.builder](spec)
    except KeyError:
        known = ", ".join(sorted(BUILDERS))
        raise DatasetSpecError(
            f"dataset {spec.name!r} names feature builder {spec.features.builder!r}; known: {known}"
        ) from None


def feature_view(spec: DatasetSpec) -> FeatureView:
    builder = _builder(spec)
    name = spec.features.view
    return FeatureView(spec, name, builder.view_columns, builder.view,
                       view_version(spec, name, builder.view_columns, builder.view))


def feature_engineer(spec: DatasetSpec) -> BaseEstimator | None:
    learned = _builder(spec).learned
    return None if learned is None else learned()


def preprocessor(spec: DatasetSpec) -> ColumnTransformer:
    """Imputes, scales and one-hot encodes exactly the spec's feature columns; drops the rest."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ])
    return ColumnTransformer(
        [("numeric", numeric, spec.features.numeric),
         ("categorical", categorical, spec.features.categorical)],
        remainder="drop",
    )


def build_feature_pipeline(spec: DatasetSpec) -> Pipeline:
    leaks = set(spec.never_features) & {*spec.features.numeric, *spec.features.categorical}
    if leaks:
        raise DatasetSpecError(f"features include columns marked never_features: {sorted(leaks)}")
    engineer = feature_engineer(spec)
    steps = [] if engineer is None else [("engineer", engineer)]
    return Pipeline([*steps, ("preprocess", preprocessor(spec))])
