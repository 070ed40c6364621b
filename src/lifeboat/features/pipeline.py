"""The one feature pipeline: view rows → learned features → model-ready matrix.

Each dataset's builder (`features.builder`) holds its feature view (record-local, stored
offline and online) and the learned transformer that sits on the view inside the model.
Training fits the model pipeline on view rows; serving runs the same fitted object on view
rows computed from a request or looked up by entity id, so a feature can never be computed
two ways.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lifeboat.datasets import DatasetSpec
from lifeboat.errors import DatasetSpecError
from lifeboat.features.builder import ENGINEER, feature_builder
from lifeboat.features.views import FeatureView, view_version


def feature_view(spec: DatasetSpec) -> FeatureView:
    builder = feature_builder(spec)
    name, columns = spec.features.view, builder.columns(spec)
    return FeatureView(spec, name, columns, builder.view,
                       view_version(spec, name, columns, builder.view))


def feature_engineer(spec: DatasetSpec) -> BaseEstimator | None:
    return feature_builder(spec).engineer()


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
    steps = [] if engineer is None else [(ENGINEER, engineer)]
    return Pipeline([*steps, ("preprocess", preprocessor(spec))])
