"""The HTTP API against a trained champion, with predictions logged to SQLite and Postgres."""

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import make_settings
from lifeboat.config import Settings
from lifeboat.db import Database, upgrade
from lifeboat.serving import create_app
from lifeboat.serving.predictor import prediction_id

BRAUND = {"Pclass": 3, "Name": "Braund, Mr. Owen Harris", "Sex": "male", "Age": 22, "SibSp": 1,
          "Parch": 0, "Fare": 7.25, "Embarked": "S"}


@pytest.fixture
def client(trained_settings: Settings, database_url: str) -> Iterator[TestClient]:
    """The session's champion, logging predictions into a fresh database of each kind."""
    settings = trained_settings.model_copy(update={"database_url": database_url})
    upgrade(Database(database_url))
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_the_readme_example_returns_a_probability_and_is_logged(client: TestClient) -> None:
    response = client.post("/predict", json=BRAUND)
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == {"name": "lifeboat-titanic", "version": "1"}
    prediction, = body["predictions"]
    assert 0 < prediction["probability"] < 0.5
    assert (prediction["prediction"], prediction["label"]) == (0, "died")

    assert uuid.UUID(prediction["id"]).version == 7
    logged, = client.get("/past-predictions").json()["items"]
    assert logged["id"] == prediction["id"]
    assert logged["source"] == "api"
    assert logged["probability"] == prediction["probability"]
    assert logged["input"]["name"] == "Braund, Mr. Owen Harris" and logged["input"]["age"] == 22
    assert (logged["model_name"], logged["model_version"]) == ("lifeboat-titanic", "1")
    assert logged["latency_ms"] > 0


def test_prediction_ids_are_unique_uuids_ordered_by_their_millisecond() -> None:
    """Version 7: the log's key index then grows at its right edge."""
    before = time.time_ns() // 1_000_000
    ids = [uuid.UUID(prediction_id()) for _ in range(5000)]
    after = time.time_ns() // 1_000_000
    assert {(i.version, i.variant) for i in ids} == {(7, uuid.RFC_4122)}
    stamps = [i.int >> 80 for i in ids]
    assert before <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= after
    assert len(set(ids)) == len(ids)


def test_records_with_missing_age_cabin_and_embarked_are_normal(client: TestClient) -> None:
    records = [
        {"pclass": 1, "name": "Allen, Miss. Elisabeth Walton", "sex": "female"},
        {"pclass": 2, "name": "Doe, Master. John", "sex": "male", "age": None, "cabin": None,
         "embarked": None, "fare": None},
        {**BRAUND, "Cabin": "C85", "boat": "7", "body": 12, "home.dest": "NY"},
    ]
    response = client.post("/predict", json={"records": records, "source": "webapp"})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 3 and predictions[0]["label"] == "survived"
    page = client.get("/past-predictions", params={"source": "webapp"}).json()
    assert page["total"] == 3
    assert all("boat" not in item["input"] for item in page["items"])


@pytest.mark.parametrize(("change", "field"), [
    ({"Age": "old"}, "age"),
    ({"Age": -3}, "age"),
    ({"Age": 250}, "age"),
    ({"Pclass": 4}, "pclass"),
    ({"Sex": "unknown"}, "sex"),
    ({"Fare": -1}, "fare"),
    ({"SibSp": 1.5}, "sibsp"),
    ({"Embarked": "X"}, "embarked"),
])
def test_wrong_types_and_impossible_values_get_a_422_naming_the_field(
        client: TestClient, change: dict, field: str) -> None:
    response = client.post("/predict", json={**BRAUND, **change})
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
    assert client.get("/past-predictions").json()["total"] == 0


def test_batch_errors_name_the_record_and_field(client: TestClient) -> None:
    response = client.post("/predict", json={"records": [BRAUND, {"Name": "X, Mr. Y", "Sex": "male"}]})
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "records", 1, "pclass"]]
    assert client.post("/predict", json={**BRAUND, "source": "moon"}).status_code == 422
    assert client.post("/predict", json=[BRAUND]).status_code == 422
    empty = client.post("/predict", json={"records": []})
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "records"]


@pytest.mark.parametrize(("content", "kind", "location"), [
    (b"", "missing", ["body"]),
    (b'{"pclass": 3,', "json_invalid", ["body", 13]),
    (b"\xff\xfe", "json_invalid", ["body", 0]),
])
def test_a_body_that_is_not_json_is_a_422_saying_where(
        client: TestClient, content: bytes, kind: str, location: list) -> None:
    response = client.post("/predict", content=content,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    error, = response.json()["detail"]
    assert (error["type"], error["loc"]) == (kind, location)


def test_past_predictions_filter_and_page_in_a_stable_order(client: TestClient) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = [client.post("/predict", json={**BRAUND, "source": source}).json()["predictions"][0]["id"]
           for source in ["api", "batch", "api", "api"]]
    page = client.get("/past-predictions", params={"source": "api", "limit": 2}).json()
    rest = client.get("/past-predictions", params={"source": "api", "limit": 2, "offset": 2}).json()
    seen = [item["id"] for item in page["items"] + rest["items"]]
    assert page["total"] == 3 and sorted(seen) == sorted([ids[0], ids[2], ids[3]])
    assert seen[0] == ids[3]
    assert client.get("/past-predictions", params={"since": before.isoformat()}).json()["total"] == 4
    assert client.get("/past-predictions", params={"until": before.isoformat()}).json()["total"] == 0
    assert client.get("/past-predictions", params={"limit": 5000}).status_code == 422


def test_model_health_and_readiness(client: TestClient) -> None:
    model = client.get("/model").json()
    assert model["version"] == "1" and "champion" in model["aliases"]
    assert model["metrics"]["test_roc_auc"] > 0.8
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "model": "ok", "database": "ok", "prediction_log": "ok", "features": "ok"}
    assert "TitanicRecord" in client.get("/openapi.json").json()["components"]["schemas"]
    metrics = client.get("/metrics").text
    assert 'lifeboat_ingested_rows_total{dataset="titanic",status="loaded"}' in metrics


def test_without_a_champion_the_service_starts_but_is_not_ready(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "empty")
    settings.ensure_home()
    upgrade(Database(settings.db_url))
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503 and "no champion" in ready.json()["checks"]["model"]
        response = client.post("/predict", json=BRAUND)
        assert response.status_code == 503 and "lifeboat train" in response.json()["detail"]
