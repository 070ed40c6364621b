"""The model pipelines Lifeboat searches over, and their search spaces.

Balancing is part of the pipeline, so it happens inside each training fold only: validation
folds and the held-out split are always the real class mix. Below `MANY_ROWS` training rows
it is SMOTE, a pipeline step; from there on the classifier weighs each class by the inverse
of its share instead (`class_weight="balanced"`), and plain boosting gives way to histogram
boosting (docs/datasets.md, "Training").
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


MANY_ROWS = 20_000
"""Training rows from which training takes the methods that scale. On the adult census file
(26,000 training rows, 24% positive; one fit of 150 trees each, one thread) SMOTE lowered
histogram boosting's held-out ROC AUC from 0.930 to 0.919, and plain boosting's from 0.925 to
0.919 while doubling its fit time (13.5 s to 25.8 s): with thousands of real rows in the
smaller class, synthetic ones add time and no information. Histogram boosting fitted in
6.1 s. Titanic (about 1,050 training rows) and customers (about 14,300) stay below it, on
the configuration their benchmarks measured."""


def many_rows(rows: int) -> bool:
    return rows >= MANY_ROWS


@dataclass(frozen=True)
class Candidate:
    name: str
    pipeline: Pipeline
    search_space: dict[str, Any]


def model_pipeline(spec: DatasetSpec, classifier: Any, rows: int = 0) -> Pipeline:
    """The feature pipeline, then balancing for `rows` training rows, then `classifier`."""
    # imbalanced-learn wants a flat chain, so the feature pipeline's steps are spliced in.
    if many_rows(rows):
        return Pipeline([*build_feature_pipeline(spec).steps,
                         ("classifier", classifier.set_params(class_weight="balanced"))])
    return Pipeline([
        *build_feature_pipeline(spec).steps,
        ("balance", SMOTE(k_neighbors=_FIVE_NEIGHBOURS, random_state=spec.training.seed)),
        ("classifier", classifier),
    ])


def candidates(spec: DatasetSpec, rows: int = 0) -> list[Candidate]:
    """The spec's `training.candidates` for `rows` training rows, searched in that order.

    A linear model and shallow boosted trees: different biases, similar Titanic scores;
    boosting replaced a random forest that cross-validated no better and searched slower.
    Histogram boosting is the one for tens of thousands of rows (customers' snapshots):
    plain boosting sorts every feature at every split and takes minutes per fit there, so
    from `MANY_ROWS` on `gradient_boosting` is searched as `hist_gradient_boosting`.
    """
    names = [_BOOSTING_AT_SCALE.get(name, name) if many_rows(rows) else name
             for name in spec.training.candidates]
    return [CANDIDATES[name](spec, rows) for name in dict.fromkeys(names)]


def _logistic_regression(spec: DatasetSpec, rows: int = 0) -> Candidate:
    return Candidate(
        "logistic_regression",
        model_pipeline(spec, LogisticRegression(max_iter=5000), rows),
        {"classifier__C": loguniform(1e-2, 1e1)},
    )


def _gradient_boosting(spec: DatasetSpec, rows: int = 0) -> Candidate:
    return Candidate(
        "gradient_boosting",
        model_pipeline(spec, GradientBoostingClassifier(random_state=spec.training.seed), rows),
        {
            "classifier__n_estimators": randint(50, 250),
            "classifier__learning_rate": loguniform(0.02, 0.2),
            "classifier__max_depth": [2, 3],
            "classifier__subsample": [0.7, 0.85, 1.0],
            "classifier__min_samples_leaf": randint(1, 10),
        },
    )


def _hist_gradient_boosting(spec: DatasetSpec, rows: int = 0) -> Candidate:
    classifier = HistGradientBoostingClassifier(early_stopping=False,
                                                random_state=spec.training.seed)
    return Candidate(
        "hist_gradient_boosting",
        model_pipeline(spec, classifier, rows),
        {
            "classifier__max_iter": randint(50, 250),
            "classifier__learning_rate": loguniform(0.02, 0.2),
            "classifier__max_leaf_nodes": randint(8, 32),
            "classifier__min_samples_leaf": randint(20, 200),
            "classifier__l2_regularization": loguniform(1e-3, 1e1),
        },
    )


CANDIDATES: dict[str, Callable[..., Candidate]] = {
    "logistic_regression": _logistic_regression,
    "gradient_boosting": _gradient_boosting,
    "hist_gradient_boosting": _hist_gradient_boosting,
}
_BOOSTING_AT_SCALE = {"gradient_boosting": "hist_gradient_boosting"}
