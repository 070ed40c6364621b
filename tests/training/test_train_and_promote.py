"""Training, registration and the promotion gate, on a real MLflow SQLite store."""

import json
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, Feedback, Prediction, upgrade
from lifeboat.errors import ModelVersionNotFound
from lifeboat.features import feature_view, materialize
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.registry import ChampionHistory, ModelRegistry, NoEarlierChampion, experiment_id
from lifeboat.training import (
    CANDIDATES,
    CalibratedModel,
    DataSeen,
    candidates,
    fit_model,
    labelled_features,
    log_and_register,
    model_pipeline,
    search_and_select,
    train,
)
from lifeboat.training.candidates import MANY_ROWS
from lifeboat.training.data import in_evaluation_set, labelled_predictions
from lifeboat.training.train import SEARCH_ROWS
from tests.support.churn_accounts import churn_accounts
from tests.support.homes import make_settings
from tests.support.paths import EXAMPLES

CHURN = EXAMPLES / "churn.yaml"
NEWCOMERS = """PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked
n1,0,3,"Newman, Mr. Paul",male,30,0,0,X1,8.05,,S
n2,1,1,"Newman, Mrs. Joanne",female,28,1,0,X2,80,C22,C
"""


@pytest.fixture
def loaded(tmp_path: Path, titanic: DatasetSpec) -> tuple[Settings, Database]:
    settings = make_settings(tmp_path / "home")
    settings.ensure_home()
    database = Database(settings.db_url)
    upgrade(database)
    ingest_file(database, titanic, str(titanic.bundled_path()), LandingZone(settings.landing_url))
    materialize(database, titanic)
    return settings, database


def _registry(settings: Settings, database: Database, titanic: DatasetSpec) -> ModelRegistry:
    return ModelRegistry(settings, titanic.model_name, ChampionHistory(database, titanic.name))


def _register(settings: Settings, titanic: DatasetSpec, database: Database, classifier: object,
              trained_on: list[str] | None = None) -> str:
    """A pipeline around `classifier`, fit to the rows keyed `trained_on` (by default the
    ones outside the frozen evaluation set, as training does) and registered like any other
    version, its training keys logged."""
    rows = labelled_features(database, feature_view(titanic))
    keys = rows.features.index.to_numpy()
    chosen = (rows.features.index.isin(trained_on) if trained_on is not None
              else ~in_evaluation_set(titanic, keys))
    model = model_pipeline(titanic, classifier).fit(rows.features[chosen], rows.labels[chosen])
    registry = ModelRegistry(settings, titanic.model_name)
    with mlflow.start_run(experiment_id=experiment_id(registry.client, settings, titanic.name)):
        mlflow.log_dict({"keys": rows.features.index[chosen].tolist()}, "training_rows.json")
        info = mlflow.sklearn.log_model(model, name="model",
                                        registered_model_name=titanic.model_name,
                                        serialization_format="cloudpickle")
    version = str(info.registered_model_version)
    registry.tag_trained(version, feature_view(titanic), 0.5)
    return version


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_every_candidate_survives_registration_and_loading_calibrated(
        name: str, loaded: tuple[Settings, Database], titanic: DatasetSpec) -> None:
    """Whichever candidate the search picks must save (skops) and load back identical, with
    its calibration and threshold."""
    settings, database = loaded
    rows = labelled_features(database, feature_view(titanic))
    features, labels = rows.features, rows.labels
    model = CalibratedModel.for_spec(CANDIDATES[name](titanic).pipeline, titanic.training, 3)
    model.fit(features, labels)
    registry = ModelRegistry(settings, titanic.model_name)
    with mlflow.start_run(experiment_id=experiment_id(registry.client, settings, titanic.name)):
        version = log_and_register(model, features.head(5), titanic)
    reloaded = registry.load(version)
    np.testing.assert_array_equal(reloaded.predict_proba(features), model.predict_proba(features))
    assert reloaded.threshold_ == model.threshold_ and reloaded.calibration_ == model.calibration_


def test_first_training_registers_a_champion_with_honest_metrics(
        loaded: tuple[Settings, Database], titanic: DatasetSpec) -> None:
    settings, database = loaded
    result = train(settings, database, titanic, promote=True)
    registry = _registry(settings, database, titanic)
    assert result.version == "1" and result.promotion.promoted
    assert registry.champion().version == "1"
    run = mlflow.get_run(result.run_id)
    for name in ("accuracy", "roc_auc", "f1", "precision", "recall", "brier", "ece"):
        assert 0 <= run.data.metrics[f"test_{name}"] <= 1
    assert run.data.metrics["test_roc_auc"] > 0.8
    keys = labelled_features(database, feature_view(titanic)).features.index.to_numpy()
    held_out = int(in_evaluation_set(titanic, keys).sum())
    assert 0.15 * len(keys) < held_out < 0.25 * len(keys)
    assert run.data.params["rows"] == "1309" and run.data.params["heldout_rows"] == str(held_out)
    assert run.data.params["search"] == "random" and run.data.params["cv_folds"] == "5"
    assert len(run.data.tags["data.hash"]) == 64 and run.data.tags["data.hash"] == result.data_hash
    assert run.data.tags["data.loaded_until"]
    heldout = set(_artifact(result.run_id, "heldout_split.json")["entity_ids"])
    trained = set(_artifact(result.run_id, "training_rows.json")["keys"])
    assert len(heldout) == held_out and len(trained) == 1309 - held_out and not heldout & trained
    assert sum(map(sum, _artifact(result.run_id, "confusion_matrix.json")["matrix"])) == held_out
    curves = _artifact(result.run_id, "heldout_curves.json")
    assert set(curves) == {"roc", "calibration", "precision_recall", "threshold"}
    model, = [v for v in registry.versions() if v.version == "1"]
    assert model.is_champion and model.metrics["test_roc_auc"] == run.data.metrics["test_roc_auc"]
    assert model.threshold == curves["threshold"]["value"] == registry.load("1").threshold_
    [change] = registry.changes()
    assert (change.from_version, change.to_version, change.changed_by) == (None, "1", "training")


def test_each_version_carries_its_model_type_hyperparameters_and_feature_importance(
        loaded: tuple[Settings, Database], titanic: DatasetSpec) -> None:
    settings, database = loaded
    registry, coin_flip = _coin_flip_champion(settings, database, titanic)
    result = train(settings, database, titanic, promote=False)
    trained = registry.get(result.version)
    params = mlflow.get_run(result.run_id).data.params
    assert trained.model_type == result.best_candidate == params["best_candidate"]
    searched = CANDIDATES[trained.model_type](titanic).search_space
    assert trained.hyperparameters == {name.removeprefix("classifier__"): params[f"best.{name}"]
                                       for name in searched}
    assert trained.training_parameters["heldout_rows"] == params["heldout_rows"]
    assert "best_candidate" not in trained.training_parameters
    importance = registry.feature_importance(result.version)
    ranked = [feature["importance"] for feature in importance["features"]]
    assert sorted(f["name"] for f in importance["features"]) == sorted(feature_view(titanic).columns)
    assert ranked == sorted(ranked, reverse=True) and ranked[0] > 0.01
    assert all(feature["spread"] >= 0 for feature in importance["features"])
    assert (importance["method"], importance["metric"]) == ("permutation", "roc_auc")
    assert importance["rows"] == int(params["heldout_rows"])
    # A version registered without a search has no type, parameters or importance to show.
    untracked = registry.get(coin_flip)
    assert (untracked.model_type, untracked.hyperparameters) == (None, {})
    assert registry.feature_importance(coin_flip) is None


def _coin_flip_champion(settings: Settings, database: Database,
                        titanic: DatasetSpec) -> tuple[ModelRegistry, str]:
    """A useless champion, promoted by hand: the registry, and its version."""
    registry = _registry(settings, database, titanic)
    coin_flip = _register(settings, titanic, database, DummyClassifier(strategy="prior"))
    registry.promote(coin_flip, by="cli", reason="set up by the test")
    return registry, coin_flip


def _artifact(run_id: str, name: str) -> dict:
    return json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=name)).read_text())


def test_the_gate_promotes_a_better_model_with_its_evidence_and_refuses_a_tie(
        loaded: tuple[Settings, Database], titanic: DatasetSpec) -> None:
    settings, database = loaded
    registry, coin_flip = _coin_flip_champion(settings, database, titanic)

    better = train(settings, database, titanic, promote=True)
    evidence = better.promotion.evidence
    assert better.promotion.promoted and better.promotion.previous_champion == coin_flip
    assert evidence["champion_score"] == pytest.approx(0.5)
    assert evidence["delta"] == pytest.approx(evidence["challenger_score"] - 0.5)
    assert 0 < evidence["interval"][0] <= evidence["delta"] <= evidence["interval"][1]
    assert evidence["rows"] == evidence["heldout_rows"] > 200 and evidence["recent_rows"] == 0
    assert registry.get(better.version).promotion["promoted"] is True

    same = train(settings, database, titanic, promote=True)  # same data and seed: a tie
    assert not same.promotion.promoted and same.promotion.evidence["delta"] == 0
    assert "gain below the minimum improvement" in same.promotion.reason
    assert registry.champion().version == better.version
    assert registry.challenger().version == same.version  # shadow-scored from now on
    assert registry.get(same.version).promotion["promoted"] is False

    unpromoted = train(settings, database, titanic, promote=False)
    assert unpromoted.promotion is None
    assert registry.champion().version == better.version
    changes = [(c.from_version, c.to_version, c.changed_by) for c in registry.changes()]
    assert changes == [(coin_flip, better.version, "training"), (None, coin_flip, "cli")]


def test_a_challenger_better_by_less_than_the_margin_is_refused(
        loaded: tuple[Settings, Database], titanic: DatasetSpec) -> None:
    settings, database = loaded
    registry, coin_flip = _coin_flip_champion(settings, database, titanic)
    demanding = settings.model_copy(update={"min_improvement": 0.45})
    result = train(demanding, database, titanic, promote=True)
    evidence = result.promotion.evidence
    assert 0.3 < evidence["delta"] < 0.45 and evidence["interval"][0] > 0  # better, not enough
    assert not result.promotion.promoted and evidence["min_improvement"] == 0.45
    assert registry.champion().version == coin_flip


def test_the_gate_never_scores_the_champion_on_rows_it_trained_on(
        loaded: tuple[Settings, Database], titanic: DatasetSpec) -> None:
    """A champion trained on half of the frozen evaluation set too: the gate leaves those
    rows out, and judges both models on the other half only."""
    settings, database = loaded
    keys = labelled_features(database, feature_view(titanic)).features.index.to_numpy()
    evaluation = keys[in_evaluation_set(titanic, keys)]
    leaked = evaluation[: len(evaluation) // 2]
    trained = keys[~in_evaluation_set(titanic, keys)].tolist() + leaked.tolist()
    champion = _register(settings, titanic, database, DummyClassifier(strategy="stratified"),
                         trained_on=trained)
    registry = _registry(settings, database, titanic)
    registry.promote(champion, by="cli", reason="set up by the test")

    challenger = train(settings, database, titanic, promote=True)
    judged = registry.promotion_keys(challenger.version)
    assert judged == set(evaluation) - set(leaked)
    assert not judged & registry.training_keys(champion)
    assert challenger.promotion.evidence["excluded_rows"] == len(leaked)


def test_promote_by_hand_rollback_and_history(loaded: tuple[Settings, Database],
                                              titanic: DatasetSpec) -> None:
    settings, database = loaded
    registry = _registry(settings, database, titanic)
    assert registry.champion() is None and registry.versions() == []
    train(settings, database, titanic, promote=True)
    coin_flip = _register(settings, titanic, database, DummyClassifier(strategy="prior"))
    assert registry.promote(coin_flip, by="api", reason="an admin's call").is_champion
    with pytest.raises(ModelVersionNotFound, match="no version 99"):
        registry.promote("99", by="api", reason="a typo")
    assert registry.rollback(by="cli").version == "1"
    assert registry.rollback(by="cli").version == coin_flip  # the one before is coin_flip again
    history = [(c.from_version, c.to_version, c.changed_by, c.reason) for c in registry.changes()]
    assert history == [("1", coin_flip, "cli", "rollback from v1"),
                       (coin_flip, "1", "cli", f"rollback from v{coin_flip}"),
                       ("1", coin_flip, "api", "an admin's call"),
                       (None, "1", "training", "first model")]


def test_rollback_needs_an_earlier_champion(loaded: tuple[Settings, Database],
                                            titanic: DatasetSpec) -> None:
    settings, database = loaded
    train(settings, database, titanic, promote=True)
    with pytest.raises(NoEarlierChampion, match="nothing to roll back to"):
        _registry(settings, database, titanic).rollback(by="cli")


def test_training_as_of_a_version_reads_exactly_its_data_again(
        loaded: tuple[Settings, Database], titanic: DatasetSpec, tmp_path: Path) -> None:
    settings, database = loaded
    first = train(settings, database, titanic, promote=True)
    seen = DataSeen.from_tags(_registry(settings, database, titanic).get("1").training_data)
    newcomers = tmp_path / "newcomers.csv"
    newcomers.write_text(NEWCOMERS)
    ingest_file(database, titanic, str(newcomers), LandingZone(settings.landing_url))
    materialize(database, titanic)

    assert len(labelled_features(database, feature_view(titanic)).labels) == 1311
    again = labelled_features(database, feature_view(titanic), as_of=seen)
    assert len(again.labels) == 1309 and again.data_hash() == first.data_hash
    reproduced = train(settings, database, titanic, promote=False, as_of=seen)
    assert reproduced.data_hash == first.data_hash
    assert train(settings, database, titanic, promote=False).data_hash != first.data_hash


def test_labelled_predictions_are_the_view_rows_they_were_scored_on(
        database: Database, titanic: DatasetSpec) -> None:
    """The logged view row where there is one (an entity id's included); the view of the
    raw input for a prediction logged before the log kept view rows; keyed, weighted, and
    only the outcomes received up to a version's moment when reproducing it."""
    view = feature_view(titanic)
    woman = {"pclass": 1, "name": "Allen, Miss. Elisabeth Walton", "sex": "female", "age": 29}
    vector = {name: None for name in view.columns} | {"pclass": 3.0, "age": 41.0, "sex": "male"}
    logged = [({"entity_id": "e1"}, vector), (woman, None)]
    received = [datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)]
    with database.session() as session:
        for number, ((given, features), moment) in enumerate(zip(logged, received)):
            session.add(Prediction(
                id=f"p{number}", created_at=moment, dataset=titanic.name, source="api",
                input=given, features=features, prediction=1, label="survived",
                probability=0.5, model_name="m", model_version="1", latency_ms=1.0))
            session.flush()
            session.add(Feedback(prediction_id=f"p{number}", actual=number, received_at=moment))
    rows = labelled_predictions(database, view, weight=3)
    expected = pd.concat([view.typed(pd.DataFrame([vector])),
                          view.from_records(pd.DataFrame.from_records([woman]))])
    keys = ["prediction:p0", "prediction:p1"]
    pd.testing.assert_frame_equal(rows.features, expected.set_axis(keys))
    assert rows.features.loc["prediction:p1", "title"] == "Miss"
    assert rows.labels.tolist() == [0, 1] and rows.row_weights.tolist() == [3, 3]
    assert rows.seen.feedback_until == received[1]
    first_only = labelled_predictions(database, view, 3, received[0], bounded=True)
    assert first_only.features.index.tolist() == ["prediction:p0"]
    assert labelled_predictions(database, view, 3, None, bounded=True).labels.empty


def test_from_many_rows_classes_are_weighted_not_resampled_and_boosting_is_histogram(
        titanic: DatasetSpec) -> None:
    """Below `MANY_ROWS` every pipeline oversamples with SMOTE and `gradient_boosting` is
    plain boosting; from there on no pipeline resamples (each classifier weighs the classes
    instead) and `gradient_boosting` is searched once, as histogram boosting."""
    every = titanic.model_copy(update={"training": titanic.training.model_copy(update={
        "candidates": ["logistic_regression", "gradient_boosting", "hist_gradient_boosting"]})})
    few = candidates(every, MANY_ROWS - 1)
    assert [c.name for c in few] == ["logistic_regression", "gradient_boosting",
                                     "hist_gradient_boosting"]
    assert all("balance" in c.pipeline.named_steps for c in few)
    assert isinstance(few[1].pipeline.named_steps["classifier"], GradientBoostingClassifier)
    many = candidates(every, MANY_ROWS)
    assert [c.name for c in many] == ["logistic_regression", "hist_gradient_boosting"]
    for candidate in many:
        steps = candidate.pipeline.named_steps
        assert not any(hasattr(step, "fit_resample") for step in steps.values())
        assert steps["classifier"].class_weight == "balanced"
    assert isinstance(many[1].pipeline.named_steps["classifier"], HistGradientBoostingClassifier)


def test_many_rows_train_by_halving_on_rows_weighted_then_calibrated_to_the_real_mix() -> None:
    """From `MANY_ROWS` on the search halves its draws on rows up to `SEARCH_ROWS` over at
    most three folds, the same each time (seeded). The classes are weighed, not resampled,
    inside the training folds: the weighted pipeline's probabilities average far above the
    real positive rate, and the calibration, fitted out of fold on the real rows, brings
    them back to it on rows no model saw."""
    spec = load_spec(str(CHURN))
    spec = spec.model_copy(update={"training": spec.training.model_copy(update={
        "candidates": ["logistic_regression"], "cv_folds": 5})})
    view = feature_view(spec)
    accounts = churn_accounts(MANY_ROWS + 4_000, seed=3)
    features = view.from_records(accounts).set_axis(accounts["account_id"])
    labels = accounts["churned"].set_axis(features.index)
    train_rows, new = slice(0, MANY_ROWS), slice(MANY_ROWS, None)
    selection = search_and_select(spec, features[train_rows], labels[train_rows], iterations=3)
    search = selection.best
    assert search.n_resources_ == [SEARCH_ROWS // 3, SEARCH_ROWS // 3 * 3]  # ~a third, ~all
    assert search.n_candidates_ == [3, 1] and search.n_splits_ == 3
    again = search_and_select(spec, features[train_rows], labels[train_rows], iterations=3)
    assert again.best.best_params_ == search.best_params_
    assert again.best.best_score_ == search.best_score_
    model = fit_model(spec, selection, features[train_rows], labels[train_rows])
    rate = labels[new].mean()
    assert 0.1 < rate < 0.4
    weighted = model.pipeline_.predict_proba(features[new])[:, 1].mean()
    calibrated = model.predict_proba(features[new])[:, 1].mean()
    assert weighted > rate + 0.15
    assert abs(calibrated - rate) < 0.02
    assert len(model.validation_probabilities_) == MANY_ROWS
    assert abs(model.validation_probabilities_.mean() - labels[train_rows].mean()) < 0.01


def test_a_first_model_on_many_rows_trains_registers_and_logs_how_it_searched(
        tmp_path: Path) -> None:
    """The whole training path from `MANY_ROWS` rows on: churn's `gradient_boosting` is
    searched as histogram boosting, the run records a halving search over three folds, and
    the class-weighted winner saves, loads back and scores as it did."""
    spec = load_spec(str(CHURN))
    settings = make_settings(tmp_path / "home", dataset=str(CHURN), search_iterations=1)
    settings.ensure_home()
    database = Database(settings.db_url)
    upgrade(database)
    accounts = tmp_path / "accounts.csv"
    churn_accounts(int(MANY_ROWS / (1 - spec.training.test_size)) + 1_000, seed=5).to_csv(
        accounts, index=False)
    ingest_file(database, spec, str(accounts), LandingZone(settings.landing_url))
    materialize(database, spec)
    result = train(settings, database, spec, promote=True)
    run = mlflow.get_run(result.run_id)
    assert int(run.data.params["train_rows"]) >= MANY_ROWS
    assert run.data.params["search"] == "halving" and run.data.params["cv_folds"] == "3"
    searched = {name.removeprefix("cv_roc_auc.") for name in run.data.metrics
                if name.startswith("cv_roc_auc.")}
    assert searched == {"logistic_regression", "hist_gradient_boosting"}
    assert result.promotion.promoted and result.metrics["roc_auc"] > 0.7
    registry = ModelRegistry(settings, spec.model_name)
    model = registry.load(result.version)
    assert not any(hasattr(step, "fit_resample") for step in model.pipeline_.named_steps.values())
    assert model.pipeline_.named_steps["classifier"].class_weight == "balanced"
    rows = labelled_features(database, feature_view(spec))
    held = in_evaluation_set(spec, rows.keys)
    reloaded = roc_auc_score(rows.labels[held], model.predict_proba(rows.features[held])[:, 1])
    assert reloaded == pytest.approx(result.metrics["roc_auc"], abs=1e-12)
    database.dispose()
