"""The model pipelines Lifeboat searches over, and their search spaces.

Oversampling is a pipeline step, so it runs inside each training fold only: validation
folds and the held-out split are always the real class mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from scipy.stats import loguniform, randint
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from lifeboat.datasets import DatasetSpec
from lifeboat.features import build_feature_pipeline


@dataclass(frozen=True)
class Candidate:
    name: str
    pipeline: Pipeline
    search_space: dict[str, Any]


def model_pipeline(spec: DatasetSpec, classifier: Any) -> Pipeline:
    # imbalanced-learn wants a flat chain, so the feature pipeline's steps are spliced in.
    return Pipeline([
        *build_feature_pipeline(spec).steps,
        ("balance", SMOTE(random_state=spec.training.seed)),
        ("classifier", classifier),
    ])


def candidates(spec: DatasetSpec) -> list[Candidate]:
    seed = spec.training.seed
    return [
        Candidate(
            "logistic_regression",
            model_pipeline(spec, LogisticRegression(max_iter=5000)),
            {"classifier__C": loguniform(1e-3, 1e2)},
        ),
        Candidate(
            "random_forest",
            model_pipeline(spec, RandomForestClassifier(random_state=seed, n_jobs=-1)),
            {
                "classifier__n_estimators": randint(200, 600),
                "classifier__max_depth": [4, 5, 6, 7, 8, 10, 12, None],
                "classifier__min_samples_leaf": randint(1, 8),
                "classifier__max_features": ["sqrt", 0.3, 0.5, 0.7],
            },
        ),
    ]
