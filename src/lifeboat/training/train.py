"""Training: search each candidate with cross-validation, keep the best, report it honestly."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import skops.io
from joblib import parallel_config
from mlflow.models import infer_signature
from sklearn.base import clone
from sklearn.experimental import enable_halving_search_cv  # noqa: F401  (makes it importable)
from sklearn.model_selection import (
    HalvingRandomSearchCV,
    RandomizedSearchCV,
    StratifiedGroupKFold,
    StratifiedKFold,
)
from threadpoolctl import threadpool_limits

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.features import FeatureView, feature_view
from lifeboat.registry import (
    CURVES_ARTIFACT,
    DRIFT_REFERENCE_ARTIFACT,
    FEATURE_IMPORTANCE_ARTIFACT,
    HYPERPARAMETER_PREFIX,
    MODEL_TYPE_PARAM,
    SCORER_ARTIFACT,
    TRAINING_ROWS_ARTIFACT,
    ChampionHistory,
    DriftReference,
    EvaluationRows,
    Gate,
    ModelRegistry,
    PromotionDecision,
    baseline_roc_auc,
    classification_metrics,
    confusion,
    curves,
    experiment_id,
    feature_importance,
)
from lifeboat.scoring import UnsupportedModel, compile_model, save_scorer
from lifeboat.training.calibration import CalibratedModel
from lifeboat.training.candidates import Candidate, candidates, many_rows
from lifeboat.training.data import DataSeen, LabelledRows, in_evaluation_set, training_data

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
Search = RandomizedSearchCV | HalvingRandomSearchCV
MANY_ROWS_FOLDS = 3  # at most, from `MANY_ROWS` on: `_folds`
HALVING_FACTOR = 3  # each round of a halving search keeps a third of its candidates
SEARCH_ROWS = 10_000  # the most rows a halving search's last round samples: `_search`
_TRUSTED_PACKAGES = ("lifeboat.", "imblearn.", "numpy.dtype", "sklearn.tree._tree.Tree",
                     "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                     "sklearn.model_selection._split.")
_REQUIREMENTS = ("scikit-learn", "imbalanced-learn", "pandas", "numpy", "skops")


@dataclass(frozen=True)
class TrainingResult:
    run_id: str
    version: str
    model_name: str
    best_candidate: str
    metrics: dict[str, float]
    promotion: PromotionDecision | None
    data_hash: str


@dataclass(frozen=True)
class Selection:
    """Every candidate's search (fitted on the folds only), and the one that won on CV score."""

    searches: dict[str, Search]
    best_name: str

    @property
    def best(self) -> Search:
        return self.searches[self.best_name]

    def best_pipeline(self) -> Any:
        """The winning candidate's pipeline with its best parameters, not fitted."""
        return clone(self.best.estimator).set_params(**self.best.best_params_)


@dataclass(frozen=True)
class _Split:
    train: LabelledRows
    heldout: LabelledRows

    @property
    def dataset_heldout(self) -> LabelledRows:
        """The held-out rows of the dataset itself, without labelled predictions: what the
        held-out metrics are computed on, the same rows for every version."""
        return self.heldout.subset(~self.heldout.from_predictions)


def train(settings: Settings, database: Database, spec: DatasetSpec, *, promote: bool,
          changed_by: str = "training", as_of: DataSeen | None = None,
          progress: Progress = lambda _step: None) -> TrainingResult:
    """Trains, logs and registers a version; with `promote`, the gate makes it champion only
    if it is better (`registry.gate`), and the change is recorded as made by `changed_by`.
    With `as_of`, trains on exactly the data a version saw (`lifeboat train --as-of`)."""
    registry = ModelRegistry(settings, spec.model_name, ChampionHistory(database, spec.name))
    view = feature_view(spec)
    progress(f"loading labelled rows with features {view.label}, and labelled predictions")
    rows = training_data(database, view, settings.feedback_weight, as_of)
    split = _split(rows, spec)
    with mlflow.start_run(experiment_id=experiment_id(registry.client, settings, spec.name),
                          run_name=f"train-{spec.name}") as run:
        data_hash = _log_setup(spec, settings, view, rows, split)
        features, labels, groups = split.train.expanded()
        selection = search_and_select(spec, features, labels, groups=groups,
                                      iterations=settings.search_iterations, progress=progress)
        _log_searches(selection, spec)
        progress(f"calibrating {selection.best_name} out of fold")
        model = fit_model(spec, selection, features, labels, groups)
        metrics = _log_evaluation(spec, model, split.dataset_heldout)
        mlflow.log_param(MODEL_TYPE_PARAM, selection.best_name)
        mlflow.log_params({f"{HYPERPARAMETER_PREFIX}{k}": v for k, v in selection.best.best_params_.items()})
        progress("recording the training distribution for drift checks")
        mlflow.log_dict(_drift_reference(spec, model, split).to_dict(), DRIFT_REFERENCE_ARTIFACT)
        progress("registering the model")
        _log_scorer(spec, view, model)
        version = log_and_register(model, split.train.features.head(5), spec)
        registry.tag_trained(version, view, model.threshold_)
    log.info("%s v%s (%s): held-out %s", spec.model_name, version, selection.best_name,
             ", ".join(f"{k}={metrics[k]:.3f}" for k in ("accuracy", "roc_auc", "f1")))
    decision = None
    if promote:
        progress("comparing with the champion")
        gate = Gate(registry, view, spec.training.primary_metric,
                    _min_improvement(settings, spec), spec.training.seed)
        decision = gate.decide(version, _evaluation_rows(split.heldout), changed_by)
    return TrainingResult(run.info.run_id, version, spec.model_name, selection.best_name,
                          metrics, decision, data_hash)


def _min_improvement(settings: Settings, spec: DatasetSpec) -> float:
    if settings.min_improvement is not None:
        return settings.min_improvement
    return spec.training.min_improvement


def _evaluation_rows(heldout: LabelledRows) -> EvaluationRows:
    return EvaluationRows(heldout.features, heldout.labels.to_numpy(), heldout.keys,
                          heldout.row_weights.astype(float), heldout.from_predictions)


def fit_model(spec: DatasetSpec, selection: Selection, features: pd.DataFrame,
              labels: pd.Series, groups: np.ndarray | None = None) -> CalibratedModel:
    """The winning pipeline, calibrated out of fold on the search's folds, with its
    decision threshold (`training.calibration`); training and the model-quality benchmark
    both call this, so the benchmark measures exactly what ships."""
    model = CalibratedModel.for_spec(selection.best_pipeline(), spec.training,
                                     _folds(spec, groups, len(labels)))
    with _cores(len(labels)):
        return model.fit(features, labels, groups=groups)


def _log_evaluation(spec: DatasetSpec, model: CalibratedModel,
                    heldout: LabelledRows) -> dict[str, float]:
    """Held-out metrics at the model's threshold, its confusion matrix, its curves and how
    much each input mattered."""
    probability = model.predict_proba(heldout.features)[:, 1]
    metrics = classification_metrics(heldout.labels, probability, model.threshold_)
    if spec.training.baseline:
        metrics["baseline_roc_auc"] = baseline_roc_auc(heldout.features[spec.training.baseline],
                                                       heldout.labels)
    mlflow.log_metrics({f"test_{name}": value for name, value in metrics.items()})
    mlflow.log_dict({"labels": [0, 1], "matrix": confusion(metrics)}, "confusion_matrix.json")
    mlflow.log_dict(curves(heldout.labels, probability, model.threshold_), CURVES_ARTIFACT)
    with _cores(len(heldout.labels)):
        mlflow.log_dict(feature_importance(model, heldout.features, heldout.labels,
                                           spec.training.seed), FEATURE_IMPORTANCE_ARTIFACT)
    return metrics


def _log_scorer(spec: DatasetSpec, view: FeatureView, model: Any) -> None:
    """The compiled scorer, beside the model, where the model has one:
    serving then loads that alone, not the pipeline (`scoring.load_predictor`)."""
    try:
        scorer = compile_model(spec, view, model)
    except UnsupportedModel:
        return
    with tempfile.TemporaryDirectory(prefix="lifeboat-scorer-") as folder:
        if save_scorer(scorer, Path(folder)):
            mlflow.log_artifacts(folder, SCORER_ARTIFACT)


def _drift_reference(spec: DatasetSpec, model: CalibratedModel, split: _Split) -> DriftReference:
    """Every labelled row's inputs with a probability the model gave without having been
    fit to that row: out of fold for the training rows, the model's own for the held-out
    ones. A model is surer of the rows it was fit to, and a drift check would take that
    difference for drift. Integer columns are given back their type (the view stores numbers
    as floats), so that class 3 is the same category in training and in requests."""
    first_copies = np.r_[0, np.cumsum(split.train.row_weights)[:-1]]
    probabilities = np.r_[model.validation_probabilities_[first_copies],
                          model.predict_proba(split.heldout.features)[:, 1]]
    features = pd.concat([split.train.features, split.heldout.features])
    integers = [name for name in features.columns
                if name in spec.columns and spec.columns[name].type == "integer"]
    inputs = features.astype({name: "Int64" for name in integers})
    return DriftReference.from_training(spec, inputs, probabilities, seed=spec.training.seed,
                                        threshold=model.threshold_)


def _split(rows: LabelledRows, spec: DatasetSpec) -> _Split:
    """The frozen evaluation set (`data.in_evaluation_set`) is held out; the rest trains.
    A time split holds out the latest cut-off of the dataset's own rows instead, because a
    model is always used on a later time than it learned from and a random split would
    flatter it; labelled predictions go by their key there too."""
    held_out = in_evaluation_set(spec, rows.keys)
    if spec.training.split == "time":
        assert rows.cutoffs is not None, "a time split needs each row's cut-off"
        latest = (rows.cutoffs == rows.cutoffs.max()).to_numpy()
        held_out = np.where(rows.from_predictions, held_out, latest)
    return _Split(rows.subset(~held_out), rows.subset(held_out))


def search_and_select(spec: DatasetSpec, features: pd.DataFrame, labels: pd.Series, *,
                      groups: np.ndarray | None = None, iterations: int | None = None,
                      progress: Progress = lambda _step: None) -> Selection:
    """Searches every candidate and keeps the best by CV score.

    Training and the model-quality benchmark both call this, so the benchmark measures
    exactly what ships. `iterations` overrides the spec's search budget; `groups` keeps
    the copies of a weighted row in one fold. How many rows there are picks the candidates'
    balancing and boosting (`candidates.MANY_ROWS`) and the kind of search (`_search`).
    """
    searches = {}
    for candidate in candidates(spec, len(labels)):
        progress(f"searching {candidate.name}")
        searches[candidate.name] = _search(candidate, features, labels, groups, spec,
                                           iterations or spec.training.search_iterations)
    return Selection(searches, max(searches, key=lambda name: searches[name].best_score_))


def _folds(spec: DatasetSpec, groups: np.ndarray | None,
           rows: int) -> StratifiedKFold | StratifiedGroupKFold:
    """Stratified folds; grouped when a row is repeated (a weighted labelled prediction),
    since a copy in the validation fold of a row the model was fit to would flatter it.
    From `MANY_ROWS` on, at most `MANY_ROWS_FOLDS`: each validation fold still holds over
    6,000 rows, and every fold fewer saves a fit of every draw searched and of the
    calibration."""
    folds, seed = spec.training.cv_folds, spec.training.seed
    if many_rows(rows):
        folds = min(folds, MANY_ROWS_FOLDS)
    if groups is None:
        return StratifiedKFold(folds, shuffle=True, random_state=seed)
    return StratifiedGroupKFold(folds, shuffle=True, random_state=seed)


def _search(candidate: Candidate, features: pd.DataFrame, labels: pd.Series,
            groups: np.ndarray | None, spec: DatasetSpec, iterations: int) -> Search:
    """`iterations` parameter draws, each scored on every fold. From `MANY_ROWS` on, by
    successive halving with rows as the resource: every draw on a share of the rows (a ninth
    for 9 to 26 draws), the best third of them on three times as many, and so on until the
    last round's few see `SEARCH_ROWS` of them, drawn in each fold. The search's cost then
    stops growing with the data; only the winner's calibration and refit see every row
    (`fit_model`). The draws are the ones a random search would make."""
    rows = len(labels)
    common: dict[str, Any] = {
        "scoring": spec.training.primary_metric, "cv": _folds(spec, groups, rows),
        "random_state": spec.training.seed, "n_jobs": None,  # as `_cores` says
        "refit": False,  # the winner is refitted once, calibrated (`fit_model`)
        "error_score": "raise"}
    if many_rows(rows):
        search: Search = HalvingRandomSearchCV(
            candidate.pipeline, candidate.search_space, n_candidates=iterations,
            factor=HALVING_FACTOR, resource="n_samples", min_resources="exhaust",
            max_resources=min(rows, SEARCH_ROWS), **common)
    else:
        search = RandomizedSearchCV(candidate.pipeline, candidate.search_space,
                                    n_iter=iterations, **common)
    with _cores(rows):
        return search.fit(features, labels, groups=groups)


@contextmanager
def _cores(rows: int) -> Iterator[None]:
    """One thread per process: histogram boosting's OpenMP threads spin while they wait, and
    on two cores shared with the service or other jobs two threads took 2.6x longer than one
    (measured); BLAS threads do the same (a logistic regression on 26,000 adult rows fitted
    in 1.5 s with OpenBLAS's two threads, 0.37 s with one). From `MANY_ROWS` on, one process
    per core instead: a search's fits and the calibration's folds run side by side, each
    worker with one thread (joblib's default); below it, starting workers costs more than
    it saves."""
    with threadpool_limits(limits=1), parallel_config(n_jobs=-1 if many_rows(rows) else 1):
        yield


def _log_searches(selection: Selection, spec: DatasetSpec) -> None:
    metric = spec.training.primary_metric
    for name, search in selection.searches.items():
        with mlflow.start_run(run_name=name, nested=True):
            mlflow.log_params(search.best_params_)
            mlflow.log_metric(f"cv_{metric}", search.best_score_)
        mlflow.log_metric(f"cv_{metric}.{name}", search.best_score_)


def _log_setup(spec: DatasetSpec, settings: Settings, view: FeatureView, rows: LabelledRows,
               split: _Split) -> str:
    """The run's parameters, what data it saw (tags `data.*`: how far the loaded rows
    reach, and their hash), and the keys of its training and held-out rows; returns the
    data hash."""
    data_hash = rows.data_hash()
    predicted = int(rows.from_predictions.sum())
    trained = int(split.train.row_weights.sum())  # the rows searched: weighted ones repeated
    mlflow.log_params({
        "dataset": spec.name,
        "feature_view": view.label,
        "rows": len(rows.labels),
        "labelled_predictions": predicted,
        "feedback_weight": settings.feedback_weight,
        "train_rows": len(split.train.labels),
        "heldout_rows": len(split.heldout.labels),
        "seed": spec.training.seed,
        "test_size": spec.training.test_size,
        "cv_folds": _folds(spec, None, trained).get_n_splits(),
        "search": "halving" if many_rows(trained) else "random",
        "search_iterations": settings.search_iterations or spec.training.search_iterations,
        "primary_metric": spec.training.primary_metric,
        "calibration": spec.training.calibration,
        "threshold_objective": spec.training.threshold.objective,
        "features": ",".join(spec.features.numeric + spec.features.categorical),
    })
    mlflow.set_tags({**rows.seen.tags(), "data.hash": data_hash, "data.rows": str(len(rows.labels)),
                     "data.labelled_predictions": str(predicted), "feature_view": view.label})
    mlflow.log_dict({"keys": split.train.keys.tolist()}, TRAINING_ROWS_ARTIFACT)
    mlflow.log_dict({"entity_key": spec.entity.key, "entity_ids": split.heldout.keys.tolist(),
                     "seed": spec.training.seed}, "heldout_split.json")
    return data_hash


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
