"""The feature view end to end: offline table, online stores (Redis and embedded), training,
and serving by entity id, including a Redis outage while the service runs."""

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient
from sklearn.dummy import DummyClassifier
from sqlalchemy import select

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import LOADED_AT_COLUMN, Database, dataset_table, upgrade
from lifeboat.features import (
    OnlineStore,
    feature_view,
    materialize,
    offline,
    offline_chunks,
    open_online_store,
)
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.registry import ModelRegistry, experiment_id
from lifeboat.serving import create_app
from lifeboat.training import labelled_features, model_pipeline
from tests.support.homes import make_settings
from tests.support.redis_server import RedisServer

NEWCOMERS = """PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked
n1,,3,"Newman, Mr. Paul",male,30,0,0,X1,8.05,,S
n2,,1,"Newman, Mrs. Joanne",female,28,1,0,X2,80,C22,C
"""

ODD_PASSENGERS = r'''PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked
q1,,3,"O'Brien, Mr. ""Jack"" \\ Junior",male,30,0,0,NULL,8.05,,S
q2,,1,"Żółć, Mrs. Łucja 日本","female",-0,1,0,"A, B",80,"C22 ""x""",C
q3,,2,"Line, Mr. Two
Lines",male,,0,0,"",,\N,Q
q4,,3,NaN,male,0.1,0,0,\t,1e-05,NULL,
q5,,3,"Tab, Miss. A\tB",female,1e2,0,2,TKT,0.30000000000000004,   ,S
'''


@pytest.fixture(params=["embedded", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path, titanic: DatasetSpec) -> Iterator[OnlineStore]:
    """An online store of each kind, without this dataset's vectors when the test starts."""
    if request.param == "embedded":
        url = f"sqlite:///{tmp_path / 'online.db'}"
    else:
        url = request.getfixturevalue("redis_url")
        _forget_view(url, titanic)
    online = open_online_store(url)
    yield online
    online.close()
    if request.param == "redis":
        _forget_view(url, titanic)


def _forget_view(url: str, spec: DatasetSpec) -> None:
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"*{spec.name}:{spec.features.view}:*", count=10_000):
        client.unlink(key)
    client.close()


@pytest.fixture
def loaded(database: Database, titanic: DatasetSpec, zone: LandingZone) -> Database:
    ingest_file(database, titanic, str(titanic.bundled_path()), zone)
    return database


@pytest.mark.parametrize("chunk_rows", [offline.CHUNK_ROWS, 97])
def test_online_offline_and_computed_features_are_identical_for_every_passenger(
        loaded: Database, store: OnlineStore, titanic: DatasetSpec, chunk_rows: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In one chunk or in many, whose borders fall anywhere: chunks are read, computed,
    inserted and pushed in threads of their own, and none may be lost or mixed up."""
    monkeypatch.setattr(offline, "CHUNK_ROWS", chunk_rows)
    report = materialize(loaded, titanic, store)
    assert (report.computed, report.pushed, report.full_push) == (1309, 1309, True)
    _assert_stores_hold_the_view(loaded, store, titanic, 1309)
    assert titanic.target.column not in feature_view(titanic).columns  # no labels online


def _assert_stores_hold_the_view(database: Database, store: OnlineStore, spec: DatasetSpec,
                                 count: int) -> None:
    """The offline rows (values and event times) and the online vectors are the view of the
    dataset's rows as pd.read_sql reads them, which shares no code with materialization."""
    view = feature_view(spec)
    with database.engine.connect() as connection:
        raw = pd.read_sql(select(dataset_table(spec)), connection)
    ids = raw[spec.entity.key].tolist()
    computed = view.from_records(raw).set_axis(ids)
    rows = pd.concat(offline_chunks(database, view)).set_index("entity_id")
    online = view.from_rows(store.read(view.key, ids), index=ids)

    assert len(computed) == len(rows) == len(online) == count
    pd.testing.assert_frame_equal(view.typed(rows[list(view.columns)]).loc[ids], computed,
                                  check_names=False)
    pd.testing.assert_series_equal(rows["event_time"].loc[ids], raw[LOADED_AT_COLUMN].set_axis(ids),
                                   check_names=False)
    pd.testing.assert_frame_equal(online, computed)
    assert store.columns(view.key) == list(view.columns)


def test_text_that_csv_must_quote_or_json_escape_is_kept_to_the_letter(
        database: Database, store: OnlineStore, titanic: DatasetSpec, zone: LandingZone,
        tmp_path: Path) -> None:
    """On PostgreSQL raw rows are read as COPY's CSV and vectors packed column by column:
    quotes, commas, a line break, empty and null-looking text and non-ASCII survive both."""
    odd = tmp_path / "odd.csv"
    odd.write_text(ODD_PASSENGERS, encoding="utf-8")
    ingest_file(database, titanic, str(odd), zone)
    report = materialize(database, titanic, store)
    assert report.computed == 5
    _assert_stores_hold_the_view(database, store, titanic, 5)


def test_materialization_is_incremental_and_refills_an_emptied_store(
        loaded: Database, store: OnlineStore, titanic: DatasetSpec, zone: LandingZone,
        tmp_path: Path) -> None:
    materialize(loaded, titanic, store)
    again = materialize(loaded, titanic, store)
    assert (again.computed, again.pushed) == (0, 0)

    newcomers = tmp_path / "newcomers.csv"
    newcomers.write_text(NEWCOMERS)
    ingest_file(loaded, titanic, str(newcomers), zone)
    grown = materialize(loaded, titanic, store)
    assert (grown.computed, grown.pushed, grown.full_push) == (2, 2, False)
    assert store.read(feature_view(titanic).key, ["n1", "n2", "nobody"])[2] is None

    empty = open_online_store(f"sqlite:///{tmp_path / 'empty.db'}")
    refilled = materialize(loaded, titanic, empty)
    assert (refilled.computed, refilled.pushed, refilled.full_push) == (0, 1311, True)
    empty.close()


def test_training_reads_the_offline_rows_and_records_the_view(
        trained_settings: Settings, titanic: DatasetSpec) -> None:
    champion = ModelRegistry(trained_settings, titanic.model_name).champion()
    assert champion.feature_view == feature_view(titanic).label
    run = mlflow.get_run(champion.run_id)
    assert run.data.params["feature_view"] == feature_view(titanic).label


@pytest.fixture
def client(trained_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(trained_settings)) as test_client:
        yield test_client


def _some_passengers(settings: Settings, spec: DatasetSpec, count: int) -> pd.DataFrame:
    database = Database(settings.db_url)
    with database.engine.connect() as connection:
        rows = pd.read_sql(select(dataset_table(spec)).limit(count), connection)
    database.dispose()
    return rows


def test_predict_by_entity_id_matches_the_full_record_and_reports_unknown_ids(
        client: TestClient, trained_settings: Settings, titanic: DatasetSpec) -> None:
    passengers = _some_passengers(trained_settings, titanic, 3)
    ids = passengers[titanic.entity.key].tolist()
    response = client.post("/predict", json={"entity_ids": [*ids, "no-such-passenger"]})
    assert response.status_code == 200
    body = response.json()
    assert [p["entity_id"] for p in body["predictions"]] == ids
    error, = body["errors"]
    assert error["entity_id"] == "no-such-passenger" and "online store" in error["error"]

    records = passengers[titanic.input_columns]
    records = records.astype(object).where(records.notna(), None).to_dict("records")
    by_record = client.post("/predict", json={"records": records}).json()["predictions"]
    assert [p["probability"] for p in body["predictions"]] == pytest.approx(
        [p["probability"] for p in by_record], rel=1e-12)
    logged = client.get("/past-predictions", params={"limit": 6}).json()["items"]
    assert {item["input"].get("entity_id") for item in logged} >= set(ids)


@pytest.mark.parametrize("entity_ids", [[], "abc", [""], [True], [2 ** 53]])
def test_bad_entity_id_lists_get_a_422_naming_the_field(client: TestClient, entity_ids: object) -> None:
    response = client.post("/predict", json={"entity_ids": entity_ids})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "entity_ids"]


def test_a_redis_outage_fails_only_entity_requests_and_the_service_recovers(
        trained_settings: Settings, titanic: DatasetSpec) -> None:
    server = RedisServer().start()
    settings = trained_settings.model_copy(update={"redis_url": server.url})
    database = Database(settings.db_url)
    try:
        materialize(database, titanic, open_online_store(server.url))
        entity = _some_passengers(settings, titanic, 1)[titanic.entity.key].tolist()
        record = {"pclass": 3, "name": "Braund, Mr. Owen Harris", "sex": "male"}
        with TestClient(create_app(settings)) as client:
            assert client.post("/predict", json={"entity_ids": entity}).status_code == 200

            server.stop()
            down = client.post("/predict", json={"entity_ids": entity})
            assert down.status_code == 503 and server.url in down.json()["detail"]
            assert client.post("/predict", json=record).status_code == 200
            ready = client.get("/ready")
            assert ready.status_code == 200 and ready.json()["checks"]["features"].startswith("degraded")

            server.start()  # back, but empty: no persistence
            ready = client.get("/ready")
            assert ready.status_code == 503 and "holds no features" in ready.json()["checks"]["features"]
            materialize(database, titanic, open_online_store(server.url))
            assert client.post("/predict", json={"entity_ids": entity}).status_code == 200
            assert client.get("/ready").status_code == 200
    finally:
        server.stop()
        database.dispose()


def _champion_on_view(settings: Settings, titanic: DatasetSpec, zone: LandingZone,
                      label: str, columns: dict[str, str]) -> Database:
    """A home whose champion was trained on features `label` with `columns`."""
    settings.ensure_home()
    database = Database(settings.db_url)
    upgrade(database)
    ingest_file(database, titanic, str(titanic.bundled_path()), zone)
    materialize(database, titanic, open_online_store(settings.online_store_url))
    rows = labelled_features(database, feature_view(titanic))
    registry = ModelRegistry(settings, titanic.model_name)
    with mlflow.start_run(experiment_id=experiment_id(registry.client, settings, titanic.name)):
        model = model_pipeline(titanic, DummyClassifier()).fit(rows.features, rows.labels)
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=titanic.model_name,
                                        serialization_format="cloudpickle")
    version = str(info.registered_model_version)
    registry.tag_trained(version, feature_view(titanic), 0.5)
    registry.client.set_model_version_tag(titanic.model_name, version, "feature_view", label)
    registry.client.set_model_version_tag(titanic.model_name, version, "feature_columns",
                                          json.dumps(columns))
    registry.promote(version, by="cli", reason="set up by the test")
    return database


def test_a_champion_trained_on_an_earlier_view_version_with_the_same_columns_still_serves(
        tmp_path: Path, titanic: DatasetSpec, zone: LandingZone) -> None:
    """A changed definition with the same columns (a fixed title rule, say) is a new view
    version; the champion trained on the old one serves on it, as the gate compares it."""
    settings = make_settings(tmp_path / "home")
    view = feature_view(titanic)
    database = _champion_on_view(settings, titanic, zone, f"{view.name}@000000000000",
                                 dict(view.columns))
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        predicted = client.post("/predict", json={"pclass": 1, "sex": "female", "name": "A, Mrs. B"})
        models = client.get("/models").json()
    assert ready.status_code == 200, ready.json()
    assert predicted.status_code == 200 and predicted.json()["model"]["version"] == "1"
    assert models["versions"][0]["feature_view"] == f"{view.name}@000000000000"
    database.dispose()


def test_a_champion_whose_view_had_other_columns_is_refused(
        tmp_path: Path, titanic: DatasetSpec, zone: LandingZone) -> None:
    settings = make_settings(tmp_path / "home")
    view = feature_view(titanic)
    columns = {name: kind for name, kind in view.columns.items() if name != "deck"}
    database = _champion_on_view(settings, titanic, zone, f"{view.name}@000000000000", columns)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
    assert ready.status_code == 503
    assert "@000000000000" in ready.json()["checks"]["model"]
    assert view.label in ready.json()["checks"]["model"]
    database.dispose()
