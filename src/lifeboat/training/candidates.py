"""The model pipelines Lifeboat searches over, and their search spaces.

Oversampling is a pipeline step, so it runs inside each training fold only: validation
folds and the held-out split are always the real class mix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from scipy.stats import loguniform, randint
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors

from lifeboat.datasets import DatasetSpec
from lifeboat.features import build_feature_pipeline


# SMOTE's default (5 neighbours, algorithm "auto") keeps a KD-tree when there are few
# features, a type that skops will not load; brute force finds the same neighbours.
_FIVE_NEIGHBOURS = NearestNeighbors(n_neighbors=6, algorithm="brute")  # itself + 5


@dataclass(frozen=True)
class Candidate:
    name: str
    pipeline: Pipeline
    search_space: dict[str, Any]


def model_pipeline(spec: DatasetSpec, classifier: Any) -> Pipeline:
    # imbalanced-learn wants a flat chain, so the feature pipeline's steps are spliced in.
    return Pipeline([
        *build_feature_pipeline(spec).steps,
        ("balance", SMOTE(k_neighbors=_FIVE_NEIGHBOURS, random_state=spec.training.seed)),
        ("classifier", classifier),
    ])


def candidates(spec: DatasetSpec) -> list[Candidate]:
    """The spec's `training.candidates`, searched in that order.

    A linear model and shallow boosted trees: different biases, similar Titanic scores;
    boosting replaced a random forest that cross-validated no better and searched slower.
    Histogram boosting is the one for tens of thousands of rows (customers' snapshots):
    plain boosting sorts every feature at every split and takes minutes per fit there.
    """
    return [CANDIDATES[name](spec) for name in spec.training.candidates]


def _logistic_regression(spec: DatasetSpec) -> Candidate:
    return Candidate(
        "logistic_regression",
        model_pipeline(spec, LogisticRegression(max_iter=5000)),
        {"classifier__C": loguniform(1e-2, 1e1)},
    )


def _gradient_boosting(spec: DatasetSpec) -> Candidate:
    return Candidate(
        "gradient_boosting",
        model_pipeline(spec, GradientBoostingClassifier(random_state=spec.training.seed)),
        {
            "classifier__n_estimators": randint(50, 250),
            "classifier__learning_rate": loguniform(0.02, 0.2),
            "classifier__max_depth": [2, 3],
            "classifier__subsample": [0.7, 0.85, 1.0],
            "classifier__min_samples_leaf": randint(1, 10),
        },
    )


def _hist_gradient_boosting(spec: DatasetSpec) -> Candidate:
    classifier = HistGradientBoostingClassifier(early_stopping=False,
                                                random_state=spec.training.seed)
    return Candidate(
        "hist_gradient_boosting",
        model_pipeline(spec, classifier),
        {
            "classifier__max_iter": randint(50, 250),
            "classifier__learning_rate": loguniform(0.02, 0.2),
            "classifier__max_leaf_nodes": randint(8, 32),
            "classifier__min_samples_leaf": randint(20, 200),
            "classifier__l2_regularization": loguniform(1e-3, 1e1),
        },
    )


CANDIDATES: dict[str, Callable[[DatasetSpec], Candidate]] = {
    "logistic_regression": _logistic_regression,
    "gradient_boosting": _gradient_boosting,
    "hist_gradient_boosting": _hist_gradient_boosting,
}
