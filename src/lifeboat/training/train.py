"""Training: search each candidate with cross-validation, keep the best, report it honestly."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
import skops.io
from mlflow.models import infer_signature
from sklearn.base import clone
from threadpoolctl import threadpool_limits
from sklearn.model_selection import (
    RandomizedSearchCV,
    StratifiedKFold,
    cross_val_predict,
    train_test_split,
)

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.features import FeatureView, feature_view
from lifeboat.registry import ModelRegistry, PromotionDecision, experiment_id, score
from lifeboat.monitoring.drift import DriftReference
from lifeboat.registry.metrics import (
    CURVES_ARTIFACT,
    DRIFT_REFERENCE_ARTIFACT,
    SCORER_ARTIFACT,
    baseline_roc_auc,
    confusion,
    curves,
)
from lifeboat.serving.fast_path import UnsupportedModel, compile_model, save_scorer
from lifeboat.training.candidates import Candidate, candidates
from lifeboat.training.data import LabelledRows, data_hash, labelled_features

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
_TRUSTED_PACKAGES = ("lifeboat.", "imblearn.", "numpy.dtype", "sklearn.tree._tree.Tree",
                     "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor")
_REQUIREMENTS = ("scikit-learn", "imbalanced-learn", "pandas", "numpy", "skops")


@dataclass(frozen=True)
class TrainingResult:
    run_id: str
    version: str
    model_name: str
    best_candidate: str
    metrics: dict[str, float]
    promotion: PromotionDecision | None


@dataclass(frozen=True)
class Selection:
    """Every candidate's fitted search, and the name of the one that won on CV score."""

    searches: dict[str, RandomizedSearchCV]
    best_name: str

    @property
    def best(self) -> RandomizedSearchCV:
        return self.searches[self.best_name]


@dataclass(frozen=True)
class _Split:
    train_x: pd.DataFrame
    train_y: pd.Series
    test_x: pd.DataFrame
    test_y: pd.Series
    test_ids: list[str]


def train(settings: Settings, database: Database, spec: DatasetSpec, *, promote: bool,
          recent: tuple[pd.DataFrame, pd.Series] | None = None,
          progress: Progress = lambda _step: None) -> TrainingResult:
    """Trains, logs and registers a version; with `promote`, makes it champion only if better
    on the held-out rows, plus `recent` labelled rows (view rows, outcomes) when given: after
    drift, the rows that matter most are the ones the world sends now."""
    registry = ModelRegistry(settings, spec.model_name)
    view = feature_view(spec)
    progress(f"loading labelled rows with features {view.label}")
    rows = labelled_features(database, view)
    features, labels = rows.features, rows.labels
    split = _split(rows, spec)
    with mlflow.start_run(experiment_id=experiment_id(registry.client, settings, spec.name),
                          run_name=f"train-{spec.name}") as run:
        _log_setup(spec, settings, view, features, labels, split)
        selection = search_and_select(spec, split.train_x, split.train_y,
                                      iterations=settings.search_iterations, progress=progress)
        _log_searches(selection, spec)
        best_name, best = selection.best_name, selection.best.best_estimator_
        metrics = score(best, split.test_x, split.test_y)
        if spec.training.baseline:
            metrics["baseline_roc_auc"] = baseline_roc_auc(split.test_x[spec.training.baseline],
                                                           split.test_y)
        mlflow.log_param("best_candidate", best_name)
        mlflow.log_params({f"best.{k}": v for k, v in selection.best.best_params_.items()})
        mlflow.log_metrics({f"test_{name}": value for name, value in metrics.items()})
        mlflow.log_dict({"labels": [0, 1], "matrix": confusion(metrics)}, "confusion_matrix.json")
        mlflow.log_dict(curves(best, split.test_x, split.test_y), CURVES_ARTIFACT)
        progress("recording the training distribution for drift checks")
        mlflow.log_dict(_drift_reference(spec, best, features, labels).to_dict(),
                        DRIFT_REFERENCE_ARTIFACT)
        progress("registering the model")
        _log_scorer(spec, view, best)
        version = log_and_register(best, split.train_x.head(5), spec)
        registry.tag_feature_view(version, view.label)
    log.info("%s v%s (%s): held-out %s", spec.model_name, version, best_name,
             ", ".join(f"{k}={metrics[k]:.3f}" for k in ("accuracy", "roc_auc", "f1")))
    decision = None
    if promote:
        progress("comparing with the champion")
        decision = _promote_if_better(registry, version, split, recent, spec)
    return TrainingResult(run.info.run_id, version, spec.model_name, best_name, metrics, decision)


def _promote_if_better(registry: ModelRegistry, version: str, split: _Split,
                       recent: tuple[pd.DataFrame, pd.Series] | None,
                       spec: DatasetSpec) -> PromotionDecision:
    metric = spec.training.primary_metric
    if recent is None or recent[1].nunique() < 2:  # one class: no ROC AUC, no evidence
        return registry.promote_if_better(version, split.test_x, split.test_y, metric)
    rows = pd.concat([split.test_x, recent[0]], ignore_index=True)
    outcomes = pd.concat([split.test_y, recent[1]], ignore_index=True)
    return registry.promote_if_better(
        version, rows, outcomes, metric,
        rows=f"the same {len(split.test_y)} held-out rows and {len(recent[1])} recent "
             "labelled predictions")


def _log_scorer(spec: DatasetSpec, view: FeatureView, model: Any) -> None:
    """The serving fast path's compiled scorer, beside the model, where the model has one:
    serving then loads that alone, not the pipeline (`serving.predictor.load_predictor`)."""
    try:
        scorer = compile_model(spec, view, model)
    except UnsupportedModel:
        return
    with tempfile.TemporaryDirectory(prefix="lifeboat-scorer-") as folder:
        if save_scorer(scorer, Path(folder)):
            mlflow.log_artifacts(folder, SCORER_ARTIFACT)


def _drift_reference(spec: DatasetSpec, model: Any, features: pd.DataFrame,
                     labels: pd.Series) -> DriftReference:
    """Every labelled row's inputs, with out-of-fold probabilities: a model is surer of
    the rows it was fit to, and a drift check would take that difference for drift.
    Integer columns are given back their type (the view stores numbers as floats), so
    that class 3 is the same category in training and in requests."""
    folds = StratifiedKFold(spec.training.cv_folds, shuffle=True, random_state=spec.training.seed)
    with _one_thread():
        probabilities = cross_val_predict(clone(model), features, labels, cv=folds,
                                          method="predict_proba")[:, 1]
    integers = [name for name in features.columns
                if name in spec.columns and spec.columns[name].type == "integer"]
    inputs = features.astype({name: "Int64" for name in integers})
    return DriftReference.from_training(spec, inputs, probabilities, seed=spec.training.seed)


def _split(rows: LabelledRows, spec: DatasetSpec) -> _Split:
    if spec.training.split == "time":
        return _time_split(rows)
    train_x, test_x, train_y, test_y = train_test_split(
        rows.features, rows.labels, test_size=spec.training.test_size, stratify=rows.labels,
        random_state=spec.training.seed,
    )
    return _Split(train_x, train_y, test_x, test_y, test_x.index.tolist())


def _time_split(rows: LabelledRows) -> _Split:
    """Trains on the earlier cut-offs and holds out the latest: a model is always used on a
    later time than it learned from, so a random split would flatter it."""
    assert rows.cutoffs is not None, "a time split needs each row's cut-off"
    held_out = (rows.cutoffs == rows.cutoffs.max()).to_numpy()
    test_x, test_y = rows.features[held_out], rows.labels[held_out]
    return _Split(rows.features[~held_out], rows.labels[~held_out], test_x, test_y,
                  test_x.index.tolist())


def search_and_select(spec: DatasetSpec, features: pd.DataFrame, labels: pd.Series, *,
                      iterations: int | None = None,
                      progress: Progress = lambda _step: None) -> Selection:
    """Searches every candidate and keeps the best by CV score.

    Training and the model-quality benchmark both call this, so the benchmark measures
    exactly what ships. `iterations` overrides the spec's search budget.
    """
    searches = {}
    for candidate in candidates(spec):
        progress(f"searching {candidate.name}")
        searches[candidate.name] = _search(candidate, features, labels, spec,
                                           iterations or spec.training.search_iterations)
    return Selection(searches, max(searches, key=lambda name: searches[name].best_score_))


def _search(candidate: Candidate, features: pd.DataFrame, labels: pd.Series, spec: DatasetSpec,
            iterations: int) -> RandomizedSearchCV:
    folds = StratifiedKFold(spec.training.cv_folds, shuffle=True, random_state=spec.training.seed)
    search = RandomizedSearchCV(
        candidate.pipeline,
        candidate.search_space,
        n_iter=iterations,
        scoring=spec.training.primary_metric,
        cv=folds,
        random_state=spec.training.seed,
        n_jobs=1,
        error_score="raise",
    )
    with _one_thread():
        return search.fit(features, labels)


def _one_thread() -> threadpool_limits:
    """Histogram boosting's OpenMP threads spin while they wait: on two cores shared with the
    service or other jobs, two threads took 2.6x longer than one (measured)."""
    return threadpool_limits(limits=1, user_api="openmp")


def _log_searches(selection: Selection, spec: DatasetSpec) -> None:
    metric = spec.training.primary_metric
    for name, search in selection.searches.items():
        with mlflow.start_run(run_name=name, nested=True):
            mlflow.log_params(search.best_params_)
            mlflow.log_metric(f"cv_{metric}", search.best_score_)
        mlflow.log_metric(f"cv_{metric}.{name}", search.best_score_)


def _log_setup(spec: DatasetSpec, settings: Settings, view: FeatureView, features: pd.DataFrame,
               labels: pd.Series, split: _Split) -> None:
    mlflow.log_params({
        "dataset": spec.name,
        "feature_view": view.label,
        "rows": len(features),
        "train_rows": len(split.train_x),
        "heldout_rows": len(split.test_x),
        "seed": spec.training.seed,
        "test_size": spec.training.test_size,
        "cv_folds": spec.training.cv_folds,
        "search_iterations": settings.search_iterations or spec.training.search_iterations,
        "primary_metric": spec.training.primary_metric,
        "features": ",".join(spec.features.numeric + spec.features.categorical),
    })
    mlflow.set_tags({"data_hash": data_hash(features, labels), "feature_view": view.label})
    mlflow.log_dict({"entity_key": spec.entity.key, "entity_ids": split.test_ids,
                     "seed": spec.training.seed}, "heldout_split.json")


def _trusted_types(model) -> list[str]:  # noqa: ANN001
    """Types skops does not trust by default but the model pipeline is made of: Lifeboat's
    transformers, imbalanced-learn's pipeline and scikit-learn's tree node arrays (of trees
    this process just trained). Anything else stays untrusted, so logging fails loudly instead of
    saving a model that could run arbitrary code when loaded.
    """
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return [name for name in untrusted if name.startswith(_TRUSTED_PACKAGES)]


def log_and_register(model, example: pd.DataFrame, spec: DatasetSpec) -> str:  # noqa: ANN001
    """Logs the whole pipeline to the active run, saved with skops, and registers a version."""
    signature = infer_signature(example, model.predict_proba(example)[:, 1])
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        registered_model_name=spec.model_name,
        pip_requirements=[f"{package}=={installed_version(package)}" for package in _REQUIREMENTS],
        serialization_format="skops",
        skops_trusted_types=_trusted_types(model),
    )
    return str(info.registered_model_version)
