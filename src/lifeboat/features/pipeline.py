"""The one feature pipeline: raw fields → engineered features → model-ready matrix.

Training fits it inside the model pipeline; serving runs the same fitted object, so a
feature can never be computed two ways.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lifeboat.datasets import DatasetSpec
from lifeboat.errors import DatasetSpecError
from lifeboat.features.titanic import TitanicFeatures

BUILDERS: dict[str, type[BaseEstimator]] = {"titanic": TitanicFeatures}


def feature_engineer(spec: DatasetSpec) -> BaseEstimator:
    try:
        return BUILDERS[spec.features.builder]()
    except KeyError:
        known = ", ".join(sorted(BUILDERS))
        raise DatasetSpecError(
            f"dataset {spec.name!r} names feature builder {spec.features.builder!r}; known: {known}"
        ) from None


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
    return Pipeline([("engineer", feature_engineer(spec)), ("preprocess", preprocessor(spec))])
