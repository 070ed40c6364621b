"""The HTTP API against a trained champion, with predictions logged to SQLite and Postgres."""

import io
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, upgrade
from lifeboat.features import feature_view, open_online_store
from lifeboat.scoring.batch import champion_predictor, score_file
from lifeboat.scoring.predictor import prediction_id
from lifeboat.scoring.shadow import ShadowScoring
from lifeboat.serving import create_app
from tests.support.homes import make_settings
from tests.support.passengers import BRAUND, stored_passengers


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


def view_row(spec: DatasetSpec, record: dict) -> dict:
    """The view row a record is scored on, as the log keeps it (missing values as None)."""
    canonical = {spec.canonical(name) or name: value for name, value in record.items()}
    row = feature_view(spec).from_records([canonical]).iloc[0]
    return {name: None if pd.isna(value) else value for name, value in row.items()}


def stored_vectors(settings: Settings, spec: DatasetSpec, ids: list[str]) -> list[dict]:
    store = open_online_store(settings.online_store_url)
    vectors = store.read(feature_view(spec).key, ids)
    store.close()
    return [dict(zip(feature_view(spec).columns, vector, strict=True)) for vector in vectors]


def logged_answers(client: TestClient, response) -> list[dict]:  # noqa: ANN001
    """The logged predictions of a /predict answer, in its order."""
    assert response.status_code == 200, response.text
    ids = [prediction["id"] for prediction in response.json()["predictions"]]
    items = client.get("/past-predictions", params={"limit": len(ids)}).json()["items"]
    logged = {item["id"]: item for item in items}
    return [logged[i] for i in ids]


def test_a_record_is_logged_with_the_view_row_it_scored_and_its_key(
        client: TestClient, titanic: DatasetSpec) -> None:
    """Inline (a few records, on the event loop) and in the thread pool (more than 32): each
    prediction keeps its view row, and the key a record carries in any spelling."""
    few = [{**BRAUND, "PassengerId": 7}, {**BRAUND, "Cabin": "C85", "Age": None}]
    many = [{**BRAUND, "passenger_id": f"p{n}", "Age": n} for n in range(40)]
    logged = {}
    for name, records in (("few", few), ("many", many)):
        logged[name] = logged_answers(client, client.post("/predict", json={"records": records}))
        assert [item["features"] for item in logged[name]] == [view_row(titanic, r)
                                                              for r in records]
    first, second = logged["few"]
    assert (first["entity_id"], second["entity_id"]) == ("7", None)
    assert first["features"]["title"] == "Mr" and first["features"]["family_size"] == 2.0
    assert second["features"]["deck"] == "C" and second["features"]["age"] is None
    assert "passengerid" not in {name.lower() for name in first["input"]}
    assert [item["entity_id"] for item in logged["many"]] == [f"p{n}" for n in range(40)]
    assert logged["many"][3]["features"]["age"] == 3.0


def test_a_csv_upload_logs_each_row_s_view_and_key(client: TestClient,
                                                    titanic: DatasetSpec) -> None:
    content = ("PassengerId,Pclass,Name,Sex,Age,Cabin\n"
               '11,3,"Braund, Mr. Owen Harris",male,22,\n'
               ',1,"Allen, Miss. Elisabeth Walton",female,,B5\n')
    logged = logged_answers(client, client.post(
        "/predict/csv", files={"file": ("p.csv", content.encode())}))
    assert [item["entity_id"] for item in logged] == ["11", None]
    assert [item["features"] for item in logged] == [
        view_row(titanic, {"pclass": 3, "name": "Braund, Mr. Owen Harris", "sex": "male",
                           "age": 22}),
        view_row(titanic, {"pclass": 1, "name": "Allen, Miss. Elisabeth Walton",
                           "sex": "female", "cabin": "B5"})]


# A good row, three rows with a bad value, a line that does not split, a good row.
UPLOAD = ("PassengerId,Pclass,Name,Sex,Age,Cabin\n"
          '11,3,"Braund, Mr. Owen Harris",male,22,\n'
          '12,1,"Allen, Miss. Elisabeth Walton",female,old,B5\n'
          '13,7,"Cumings, Mrs. John",female,38,\n'
          '14,2,"Heikkinen, Miss. Laina",unknown,250,\n'
          '15,3,"Ragged, Mr. Line",male\n'
          '16,3,"Moran, Mr. James",male,,\n')
UPLOAD_ISSUES = [
    {"row": 2, "column": "age", "issue": "wrong_type", "reason": "not a number", "value": "old"},
    {"row": 3, "column": "pclass", "issue": "not_allowed", "reason": "not one of 1, 2, 3",
     "value": "7"},
    {"row": 4, "column": "sex", "issue": "not_allowed", "reason": "not one of male, female",
     "value": "unknown"},
    {"row": 4, "column": "age", "issue": "out_of_range", "reason": "outside 0 to 100",
     "value": "250"},
    {"row": 5, "issue": "malformed_row",  # no column: the line is no row
     "reason": "the line does not split into the header's columns",
     "value": '15,3,"Ragged, Mr. Line",male'},
]


def test_an_upload_scores_every_row_and_lists_each_bad_value_with_its_row(
        client: TestClient) -> None:
    """A bad value does not refuse the file: its row is scored with that value missing, and
    the value is listed with its row, column and reason, as is the line that is no row."""
    answer = client.post("/predict/csv", files={"file": ("p.csv", UPLOAD.encode())})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [p["row"] for p in body["predictions"]] == [1, 2, 3, 4, 6]
    assert body["issues"] == UPLOAD_ISSUES
    without_age = client.post("/predict", json={
        "pclass": 1, "name": "Allen, Miss. Elisabeth Walton", "sex": "female", "cabin": "B5"})
    assert body["predictions"][1]["probability"] == without_age.json()["predictions"][0][
        "probability"]
    assert "issues" not in client.post("/predict", json=BRAUND).json()


def test_an_upload_answered_as_csv_lists_the_bad_values_in_its_rows(client: TestClient) -> None:
    answer = client.post("/predict/csv", headers={"accept": "text/csv"},
                         files={"file": ("p.csv", UPLOAD.encode())})
    assert answer.status_code == 200, answer.text
    table = pd.read_csv(io.StringIO(answer.text), dtype=str, keep_default_na=False)
    assert table["row"].tolist() == ["1", "2", "3", "4", "5", "6"]
    assert table["issues"].tolist() == ["", "age: wrong_type", "pclass: not_allowed",
                                        "sex: not_allowed; age: out_of_range", "malformed_row", ""]
    assert table["prediction"].tolist()[4] == "" and table["prediction"].tolist()[5] in ("0", "1")


def test_an_upload_and_lifeboat_predict_score_a_file_alike(
        client: TestClient, trained_settings: Settings, database_url: str, titanic: DatasetSpec,
        tmp_path: Path) -> None:
    """One policy for a file, however it is scored: the same rows, the same probabilities,
    the same issues as `lifeboat predict` writes in its output. Without its key column,
    which would have `lifeboat predict` read the inputs the file lacks from the online store."""
    content = "\n".join(line.split(",", 1)[1] for line in UPLOAD.splitlines()) + "\n"
    source = tmp_path / "p.csv"
    source.write_text(content)
    uploaded = client.post("/predict/csv", files={"file": ("p.csv", content.encode())}).json()
    assert len(uploaded["issues"]) == len(UPLOAD_ISSUES)
    database = Database(database_url)
    try:
        report = score_file(trained_settings, database, titanic, str(source))
    finally:
        database.dispose()
    batch = pd.read_csv(report.output, keep_default_na=False)
    assert batch["row"].tolist() == [p["row"] for p in uploaded["predictions"]]
    assert batch["probability"].tolist() == pytest.approx(
        [p["probability"] for p in uploaded["predictions"]], abs=1e-9)
    named = {}
    for issue in uploaded["issues"]:
        if "column" in issue:
            named.setdefault(issue["row"], []).append(f"{issue['column']}: {issue['issue']}")
    assert batch["issues"].tolist() == ["; ".join(named.get(row, [])) for row in batch["row"]]
    assert report.skipped_lines == 1


def test_a_file_with_no_row_to_score_is_a_422_naming_the_file(client: TestClient) -> None:
    for content in ("Pclass,Name,Sex\n", "Pclass,Name,Sex\n1,2\n", "Pclass,Name\n1,x\n"):
        answer = client.post("/predict/csv", files={"file": ("p.csv", content.encode())})
        assert answer.status_code == 422
        assert answer.json()["detail"][0]["loc"] == ["body", "file"]
        assert answer.json()["detail"][0]["msg"].startswith("not a usable CSV file: ")


def test_a_prediction_by_entity_id_is_logged_with_its_stored_vector(
        client: TestClient, trained_settings: Settings, titanic: DatasetSpec) -> None:
    ids = stored_passengers(trained_settings, titanic, 3)
    logged = logged_answers(client, client.post("/predict", json={"entity_ids": ids}))
    assert [item["entity_id"] for item in logged] == ids
    assert [item["input"] for item in logged] == [{"entity_id": i} for i in ids]
    assert [item["features"] for item in logged] == stored_vectors(trained_settings, titanic, ids)
    assert all(item["features"]["title"] for item in logged)


def test_explain_by_entity_id_leaves_each_stored_field_out_in_turn(
        client: TestClient, trained_settings: Settings, titanic: DatasetSpec) -> None:
    ids = stored_passengers(trained_settings, titanic, 2)
    response = client.post("/predict", json={"entity_ids": ids, "explain": True})
    assert response.status_code == 200
    predictor = champion_predictor(trained_settings, titanic)
    columns = list(predictor.view.columns)
    for prediction, stored in zip(response.json()["predictions"],
                                  stored_vectors(trained_settings, titanic, ids), strict=True):
        given = {name for name, value in stored.items() if value is not None}
        contributions = {c["feature"]: c for c in prediction["contributions"]}
        assert set(contributions) == given
        for name in ("sex", "pclass"):
            without = predictor.vector_probabilities(
                [[None if column == name else stored[column] for column in columns]])[0]
            assert contributions[name]["value"] == stored[name]
            assert contributions[name]["effect"] == pytest.approx(
                prediction["probability"] - without, abs=1e-12)
        effects = [abs(c["effect"]) for c in prediction["contributions"]]
        assert effects == sorted(effects, reverse=True)
    plain = client.post("/predict", json={"entity_ids": ids}).json()["predictions"]
    assert all("contributions" not in p for p in plain)
    too_many = client.post("/predict", json={"entity_ids": [ids[0]] * 101, "explain": True})
    assert too_many.status_code == 413


def _shadowed(agreement: str) -> float:
    return REGISTRY.get_sample_value("lifeboat_shadow_predictions_total", {
        "dataset": "titanic", "champion_version": "1", "challenger_version": "1",
        "agreement": agreement}) or 0.0


def test_shadow_scoring_scores_entity_id_predictions_too(
        trained_settings: Settings, titanic: DatasetSpec) -> None:
    """The champion as its own challenger, on the vectors logged: every answer agrees."""
    champion = champion_predictor(trained_settings, titanic)
    store = open_online_store(trained_settings.online_store_url)
    by_id = champion.predict_entities(
        store, stored_passengers(trained_settings, titanic, 5), "api").predictions
    store.close()
    served = [*by_id, *champion.predict([{"pclass": 3, "name": "X, Mr. Y", "sex": "male"}], "api")]
    shadow = ShadowScoring()
    shadow.challenger = champion
    before = _shadowed("agree"), _shadowed("disagree")
    shadow.submit(served)
    deadline = time.monotonic() + 10
    while _shadowed("agree") < before[0] + 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    shadow.stop()
    assert (_shadowed("agree"), _shadowed("disagree")) == (before[0] + 6, before[1])
