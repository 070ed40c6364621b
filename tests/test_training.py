"""Training, registration and gated promotion, on a real MLflow SQLite store."""

import json
from pathlib import Path

import mlflow
import numpy as np
import mlflow.sklearn
import pytest
from sklearn.dummy import DummyClassifier

from conftest import make_settings
from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, upgrade
from lifeboat.errors import ModelVersionNotFound
from lifeboat.features import feature_view, materialize
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.registry import ModelRegistry, experiment_id
from lifeboat.training import (
    CANDIDATES,
    labelled_features,
    log_and_register,
    model_pipeline,
    train,
)


@pytest.fixture
def loaded(tmp_path: Path, titanic: DatasetSpec) -> tuple[Settings, Database]:
    settings = make_settings(tmp_path / "home")
    settings.ensure_home()
    database = Database(settings.db_url)
    upgrade(database)
    ingest_file(database, titanic, str(titanic.bundled_path()), LandingZone(settings.landing_url))
    materialize(database, titanic)
    return settings, database


def _register_coin_flip(settings: Settings, titanic: DatasetSpec, database: Database) -> str:
    """A deliberately useless model, registered like any other version."""
    rows = labelled_features(database, feature_view(titanic))
    features, labels = rows.features, rows.labels
    model = model_pipeline(titanic, DummyClassifier(strategy="prior"))
    model.fit(features, labels)
    registry = ModelRegistry(settings, titanic.model_name)
    with mlflow.start_run(experiment_id=experiment_id(registry.client, settings, titanic.name)):
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=titanic.model_name,
                                        serialization_format="cloudpickle")
    version = str(info.registered_model_version)
    registry.tag_feature_view(version, feature_view(titanic).label)
    return version


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_every_candidate_survives_registration_and_loading(
        name: str, loaded: tuple[Settings, Database], titanic: DatasetSpec) -> None:
    """Whichever candidate the search picks must save (skops) and load back identical."""
    settings, database = loaded
    rows = labelled_features(database, feature_view(titanic))
    features, labels = rows.features, rows.labels
    candidate = CANDIDATES[name](titanic)
    model = candidate.pipeline.fit(features, labels)
    registry = ModelRegistry(settings, titanic.model_name)
    with mlflow.start_run(experiment_id=experiment_id(registry.client, settings, titanic.name)):
        version = log_and_register(model, features.head(5), titanic)
    reloaded = registry.load(version)
    np.testing.assert_array_equal(reloaded.predict_proba(features), model.predict_proba(features))


def test_first_training_registers_a_champion_with_honest_metrics(
        loaded: tuple[Settings, Database], titanic: DatasetSpec) -> None:
    settings, database = loaded
    result = train(settings, database, titanic, promote=True)
    registry = ModelRegistry(settings, titanic.model_name)
    assert result.version == "1" and result.promotion.promoted
    assert registry.champion().version == "1"
    run = mlflow.get_run(result.run_id)
    for name in ("accuracy", "roc_auc", "f1", "precision", "recall", "brier"):
        assert 0 <= run.data.metrics[f"test_{name}"] <= 1
    assert run.data.metrics["test_roc_auc"] > 0.8
    assert run.data.params["rows"] == "1309" and run.data.params["heldout_rows"] == "262"
    assert len(run.data.tags["data_hash"]) == 64
    heldout = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="heldout_split.json")).read_text())
    assert len(heldout["entity_ids"]) == 262
    matrix = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="confusion_matrix.json")).read_text())["matrix"]
    assert sum(map(sum, matrix)) == 262
    model, = [v for v in registry.versions() if v.version == "1"]
    assert model.is_champion and model.metrics["test_roc_auc"] == run.data.metrics["test_roc_auc"]


def test_champion_moves_only_for_a_strictly_better_model(
        loaded: tuple[Settings, Database], titanic: DatasetSpec) -> None:
    settings, database = loaded
    registry = ModelRegistry(settings, titanic.model_name)
    coin_flip = _register_coin_flip(settings, titanic, database)
    registry.promote(coin_flip)

    better = train(settings, database, titanic, promote=True)
    assert better.promotion.promoted and better.promotion.previous_champion == coin_flip
    assert better.promotion.champion_score == pytest.approx(0.5)

    same = train(settings, database, titanic, promote=True)  # same data and seed: a tie
    assert not same.promotion.promoted
    assert same.promotion.challenger_score == same.promotion.champion_score
    assert registry.champion().version == better.version

    unpromoted = train(settings, database, titanic, promote=False)
    assert unpromoted.promotion is None
    assert registry.champion().version == better.version
    assert [v.version for v in registry.versions()] == ["4", "3", "2", "1"]


def test_promote_by_hand_and_unknown_versions(loaded: tuple[Settings, Database],
                                              titanic: DatasetSpec) -> None:
    settings, database = loaded
    registry = ModelRegistry(settings, titanic.model_name)
    assert registry.champion() is None and registry.versions() == []
    train(settings, database, titanic, promote=True)
    coin_flip = _register_coin_flip(settings, titanic, database)
    assert registry.promote(coin_flip).is_champion
    with pytest.raises(ModelVersionNotFound, match="no version 99"):
        registry.promote("99")
    assert registry.champion().version == coin_flip
