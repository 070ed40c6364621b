"""The service's routes beyond /predict: CSV upload, explanations, models and the admin
actions, feedback, the size limit and hot reload of a new champion."""

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import make_url, select

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, Prediction, upgrade
from lifeboat.features import feature_view
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.registry import ModelRegistry
from lifeboat.scoring import vector_contributions
from lifeboat.serving import create_app
from lifeboat.serving.schemas import record_model
from lifeboat.synthetic.passengers import synthetic_passengers
from lifeboat.training import CANDIDATES, train
from tests.support.homes import trained_home
from tests.support.live_server import live_server
from tests.support.tcp_proxy import TcpProxy

KEY = "s3cret-admin-key"
CSV_ROWS = """PassengerId,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked
1,3,"Braund, Mr. Owen Harris",male,22,1,0,A/5 21171,7.25,,S
2,1,"Cumings, Mrs. John Bradley (Florence Briggs Thayer)",female,38,1,0,PC 17599,71.2833,C85,C
3,3,"=HYPERLINK(""http://x""), Miss. Laina",female,,0,0,STON/O2. 3101282,7.925,,S
"""
WOMAN = {"pclass": 1, "name": "Allen, Miss. Elisabeth Walton", "sex": "female", "age": 29,
         "fare": 211.34, "embarked": "S"}


@pytest.fixture
def client(trained_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(trained_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def own_home(tmp_path_factory: pytest.TempPathFactory, titanic: DatasetSpec) -> Settings:
    """A registry these tests may change (promote, retrain) without touching the session's."""
    return trained_home(tmp_path_factory.mktemp("admin") / "home", titanic)


@pytest.fixture
def admin(own_home: Settings) -> Iterator[TestClient]:
    settings = own_home.model_copy(update={"api_key": SecretStr(KEY), "model_poll_seconds": 0.2})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _upload(client: TestClient, content: str, **headers: str):
    return client.post("/predict/csv", params={"source": "webapp"}, headers=headers,
                       files={"file": ("passengers.csv", content.encode(), "text/csv")})


def test_a_csv_upload_scores_every_row_in_order_and_logs_them(client: TestClient) -> None:
    response = _upload(client, CSV_ROWS)
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 3
    single = client.post("/predict", json={"Pclass": 1, "Name": "Cumings, Mrs. John Bradley "
                                           "(Florence Briggs Thayer)", "Sex": "female", "Age": 38,
                                           "SibSp": 1, "Parch": 0, "Ticket": "PC 17599",
                                           "Fare": 71.2833, "Cabin": "C85", "Embarked": "C"})
    assert predictions[1]["probability"] == pytest.approx(single.json()["predictions"][0]["probability"])
    logged = {item["id"] for item in client.get("/past-predictions",
                                                params={"source": "webapp"}).json()["items"]}
    assert {p["id"] for p in predictions} <= logged


def test_a_csv_upload_can_come_back_as_csv_with_formulas_defused(client: TestClient) -> None:
    response = _upload(client, CSV_ROWS, accept="text/csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="passengers.predictions.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["passenger_id"] for row in rows] == ["1", "2", "3"]
    assert rows[2]["name"].startswith("'=HYPERLINK")
    assert all(0 <= float(row["probability"]) <= 1 and row["prediction_id"] for row in rows)


@pytest.mark.parametrize(("content", "issue"), [
    (CSV_ROWS.replace(",male,22,", ",male,old,"), {"row": 1, "column": "age"}),
    (CSV_ROWS.replace("1,3,", "1,7,", 1), {"row": 1, "column": "pclass"}),
    (CSV_ROWS + "4,3,too,few\n", {"row": 4, "issue": "malformed_row"}),
])
def test_a_bad_value_or_line_is_listed_by_its_row_and_the_rest_scored(
        client: TestClient, content: str, issue: dict) -> None:
    response = _upload(client, content)
    assert response.status_code == 200
    assert [p["row"] for p in response.json()["predictions"]] == [1, 2, 3]
    listed, = response.json()["issues"]
    assert listed.items() >= issue.items()


@pytest.mark.parametrize("content", ["Pclass,Name\n", "\x89PNG\r\n\x1a\n\x00\x00binary"])
def test_a_file_that_is_no_csv_is_a_422_naming_the_file(client: TestClient, content: str) -> None:
    response = _upload(client, content)
    assert response.status_code == 422
    assert ["body", "file"] in [error["loc"] for error in response.json()["detail"]]


def test_explain_says_which_fields_pushed_the_probability(client: TestClient) -> None:
    prediction, = client.post("/predict", json={**WOMAN, "explain": True}).json()["predictions"]
    effects = {c["feature"]: c["effect"] for c in prediction["contributions"]}
    assert set(effects) == set(WOMAN)
    assert effects["sex"] > 0.05  # a first-class woman: her sex raised her odds
    ordered = [abs(c["effect"]) for c in prediction["contributions"]]
    assert ordered == sorted(ordered, reverse=True)
    plain, = client.post("/predict", json=WOMAN).json()["predictions"]
    assert "contributions" not in plain and plain["probability"] == prediction["probability"]


def test_models_lists_versions_with_the_champion_marked(client: TestClient) -> None:
    page = client.get("/models").json()
    assert page["champion"] == page["serving"] == "1"
    version, = page["versions"]
    assert version["is_champion"] and version["serving"]
    assert version["metrics"]["test_accuracy"] > 0.7
    assert version["feature_view"].startswith("passenger_profile@")


def test_admin_routes_are_refused_without_a_configured_key(client: TestClient) -> None:
    assert client.post("/models/1/promote", headers={"Authorization": f"Bearer {KEY}"}).status_code == 403
    assert client.post("/retrain").status_code == 403


def test_admin_routes_need_the_right_key(admin: TestClient) -> None:
    assert admin.post("/models/1/promote").status_code == 401
    assert admin.post("/models/1/promote", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert admin.post("/retrain", headers={"Authorization": "Bearer wrong"}).status_code == 401
    missing = admin.post("/models/99/promote", headers={"Authorization": f"Bearer {KEY}"})
    assert missing.status_code == 404


def test_retrain_registers_a_challenger_and_the_service_serves_the_champion(
        admin: TestClient, own_home: Settings, titanic: DatasetSpec, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    nothing_new = admin.post("/retrain", headers=auth)
    assert nothing_new.status_code == 202
    status = _wait_for(lambda: admin.get("/retrain").json(), lambda s: s["state"] != "running")
    assert status["state"] == "succeeded" and status["version"] is None
    assert status["reason"].startswith("no new labels")
    arrivals = tmp_path / "arrivals.csv"
    synthetic_passengers(10, seed=2).to_csv(arrivals, index=False)
    database = Database(own_home.db_url)
    ingest_file(database, titanic, str(arrivals), LandingZone(own_home.landing_url))
    database.dispose()
    started = admin.post("/retrain", headers=auth)
    assert started.status_code == 202 and started.json()["state"] == "running"
    assert admin.post("/retrain", headers=auth).status_code == 409  # not twice at once
    status = _wait_for(lambda: admin.get("/retrain").json(), lambda s: s["state"] != "running")
    assert status["state"] == "succeeded", status
    assert status["version"] == "2" and status["reason"]
    champion = ModelRegistry(own_home, "lifeboat-titanic").champion().version
    assert admin.get("/model").json()["version"] == champion

    promoted = admin.post("/models/2/promote", headers=auth).json()
    assert promoted["is_champion"] and promoted["serving"]
    assert admin.get("/model").json()["version"] == "2"


def test_a_promotion_made_elsewhere_is_picked_up_without_a_restart(
        admin: TestClient, own_home: Settings) -> None:
    registry = ModelRegistry(own_home, "lifeboat-titanic")
    if len(registry.versions()) < 2:
        pytest.fail("needs the version the retrain test registers; run the module whole")
    other = next(v.version for v in registry.versions() if not v.is_champion)
    registry.promote(other, by="cli", reason="the test's")  # as `lifeboat promote` elsewhere
    served = _wait_for(lambda: admin.get("/model").json()["version"], lambda v: v == other)
    assert served == other


def test_a_poll_that_finds_no_alias_moved_describes_no_version(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    service = client.app.state.services["titanic"]
    described: list[str] = []
    monkeypatch.setattr(service.registry, "champion", lambda: described.append("champion"))
    monkeypatch.setattr(service.registry, "challenger", lambda: described.append("challenger"))
    service.refresh_models()
    assert described == []  # each costs the requests milliseconds of the GIL
    monkeypatch.setattr(service.registry, "aliases", lambda: {"champion": "2"})
    service.refresh_models()
    assert described == ["champion", "challenger"]


def test_feedback_records_the_true_outcome(client: TestClient) -> None:
    prediction, = client.post("/predict", json=WOMAN).json()["predictions"]
    answer = client.post("/feedback", json={"id": prediction["id"], "actual": 1})
    assert answer.status_code == 200
    assert answer.json() == {"id": prediction["id"], "actual": 1,
                             "prediction": prediction["prediction"],
                             "correct": prediction["prediction"] == 1}
    again = client.post("/feedback", json={"id": prediction["id"], "actual": 0}).json()
    assert again["actual"] == 0
    assert client.post("/feedback", json={"id": "no-such-id", "actual": 1}).status_code == 404
    bad = client.post("/feedback", json={"id": prediction["id"], "actual": 2})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "actual"]


def test_oversized_bodies_get_a_413_before_being_read(trained_settings: Settings) -> None:
    settings = trained_settings.model_copy(update={"max_request_bytes": 2048})
    with TestClient(create_app(settings)) as small:
        big = {"records": [WOMAN] * 100}
        assert small.post("/predict", json=big).status_code == 413
        assert _upload(small, CSV_ROWS * 30).status_code == 413
        assert small.post("/predict", json=WOMAN).status_code == 200


def _wait_for(read, done, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if done(value):
            return value
        time.sleep(0.2)
    return value


def test_the_monitoring_summary_counts_predictions_and_ingestion_quality(client: TestClient) -> None:
    client.post("/predict", json={"records": [WOMAN, WOMAN, {**WOMAN, "sex": "male", "pclass": 3,
                                                             "name": "Doe, Mr. John"}]})
    summary = client.get("/monitoring/summary").json()
    total = client.get("/past-predictions", params={"limit": 1}).json()["total"]
    assert sum(point["count"] for point in summary["predictions_over_time"]) == total
    assert {point["label"] for point in summary["predictions_over_time"]} <= {"survived", "died"}
    assert summary["predictions"] == total
    assert sum(bin["count"] for bin in summary["probabilities"]) == total
    first_run = summary["quality"][0]
    assert (first_run["rows_total"], first_run["rows_loaded"], first_run["invalid_share"]) == (1309, 1309, 0.0)


def test_promoting_then_rolling_back_under_load_fails_no_request(
        tmp_path_factory: pytest.TempPathFactory, titanic: DatasetSpec) -> None:
    """Four clients send requests while an admin promotes another version, then rolls back:
    no request fails, and each client's answers switch to the new version once, then back
    to the previous champion once."""
    settings = trained_home(tmp_path_factory.mktemp("load") / "home", titanic)
    database = Database(settings.db_url)
    challenger = train(settings, database, titanic, promote=False).version
    database.dispose()
    settings = settings.model_copy(update={"api_key": SecretStr(KEY)})
    stop, outcomes, by_client = threading.Event(), [], [[] for _ in range(4)]
    admin = {"Authorization": f"Bearer {KEY}"}

    def client_loop(base_url: str, seen_by_this_client: list) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            while not stop.is_set():
                response = http.post("/predict", json=WOMAN)
                version = response.json()["model"]["version"] if response.is_success else None
                outcomes.append((response.status_code, version))
                seen_by_this_client.append(version)

    def fifty_more() -> None:
        seen = len(outcomes)
        _wait_for(lambda: len(outcomes), lambda n: n >= seen + 50, timeout=60)

    with live_server(create_app(settings)) as base_url:
        clients = [threading.Thread(target=client_loop, args=(base_url, seen))
                   for seen in by_client]
        for thread in clients:
            thread.start()
        fifty_more()
        promoted = httpx.post(f"{base_url}/models/{challenger}/promote", headers=admin, timeout=60)
        fifty_more()
        rolled_back = httpx.post(f"{base_url}/models/rollback", headers=admin, timeout=60)
        fifty_more()
        history = httpx.get(f"{base_url}/models/history").json()["items"]
        stop.set()
        for thread in clients:
            thread.join()
    assert promoted.status_code == 200 and rolled_back.status_code == 200
    assert rolled_back.json()["version"] == "1" and rolled_back.json()["serving"]
    assert [status for status, _ in outcomes if status != 200] == []
    for versions in by_client:  # each client's requests run one after another
        switches = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
        assert switches == ["1", challenger, "1"], "each change is served once, never undone"
    assert [(h["from_version"], h["to_version"], h["changed_by"]) for h in history] == [
        (challenger, "1", "api"), ("1", challenger, "api"), (None, "1", "training")]


def test_a_database_outage_mid_traffic_loses_no_prediction(
        trained_settings: Settings, postgres_server_url: str) -> None:
    """The service keeps answering while PostgreSQL is unreachable; once it is back, every
    prediction it served is in the log exactly once."""
    server = make_url(postgres_server_url)
    upgrade(Database(postgres_server_url))
    proxy = TcpProxy(server.host, server.port or 5432).start()
    settings = trained_settings.model_copy(update={"database_url": server.set(
        host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)})
    stop, served, failures = threading.Event(), [], []

    def client_loop(base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            while not stop.is_set():
                response = http.post("/predict", json=WOMAN)
                if response.status_code == 200:
                    served.append(response.json()["predictions"][0]["id"])
                else:
                    failures.append(response.status_code)

    with live_server(create_app(settings)) as base_url:
        clients = [threading.Thread(target=client_loop, args=(base_url,)) for _ in range(4)]
        for thread in clients:
            thread.start()
        _wait_for(lambda: len(served), lambda n: n >= 100, timeout=60)
        proxy.cut()
        degraded = _wait_for(lambda: httpx.get(f"{base_url}/ready", timeout=30).json(),
                             lambda r: r["checks"]["prediction_log"].startswith("degraded"), 60)
        during = len(served)
        _wait_for(lambda: len(served), lambda n: n >= during + 100, timeout=60)
        proxy.restore()
        _wait_for(lambda: httpx.get(f"{base_url}/ready", timeout=30).json()["checks"]["prediction_log"],
                  lambda status: status == "ok", 60)
        stop.set()
        for thread in clients:
            thread.join()
    proxy.close()
    assert degraded["status"] == "ready" and degraded["checks"]["database"].startswith("degraded")
    assert failures == []
    with Database(postgres_server_url).session() as session:
        logged = session.scalars(select(Prediction.id).where(Prediction.id.in_(served))).all()
    assert len(served) > 200 and sorted(logged) == sorted(served)


def test_each_version_has_its_heldout_roc_and_calibration_curves(client: TestClient) -> None:
    curves = client.get("/models/1/curves").json()
    fpr, tpr = curves["roc"]["fpr"], curves["roc"]["tpr"]
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    area = sum((b - a) * (c + d) / 2 for a, b, c, d in zip(fpr, fpr[1:], tpr, tpr[1:]))
    metrics = client.get("/models").json()["versions"][0]["metrics"]
    assert area == pytest.approx(metrics["test_roc_auc"], abs=0.01)
    calibration = curves["calibration"]
    assert len(calibration["predicted"]) == len(calibration["observed"]) >= 5
    assert all(0 <= p <= 1 for p in calibration["predicted"] + calibration["observed"])
    assert client.get("/models/99/curves").status_code == 404


def test_a_version_s_report_is_what_the_registry_holds_of_it(
        client: TestClient, trained_settings: Settings, titanic: DatasetSpec) -> None:
    report = client.get("/models/1/report").json()
    held = ModelRegistry(trained_settings, titanic.model_name).get("1")
    assert (report["model_type"], report["run_id"]) == (held.model_type, held.run_id)
    assert report["model_type"] in CANDIDATES
    assert report["hyperparameters"] == held.hyperparameters != {}
    assert report["training_parameters"] == held.training_parameters
    assert report["curves"] == client.get("/models/1/curves").json()
    importance = report["feature_importance"]
    assert sorted(f["name"] for f in importance["features"]) == sorted(feature_view(titanic).columns)
    listed, = client.get("/models").json()["versions"]
    assert {k: report[k] for k in listed} == listed  # the report is the listing's row, and more
    assert client.get("/models/99/report").status_code == 404
    described = client.get("/openapi.json").json()["paths"]["/models/{version}/report"]["get"]
    assert "classification report" in described["summary"]


def test_an_upload_is_read_as_ingest_reads_it(client: TestClient) -> None:
    """Blanks around values, any case, and " ?" (a missing token) as a file holds them."""
    spelled = (CSV_ROWS.replace(",male,22,", ", MALE ,22,")
               .replace(",female,38,", ",Female , 38 ,").replace(",C85,C", ", ? , c "))
    plain = _upload(client, CSV_ROWS.replace(",C85,C", ",,C"))
    response = _upload(client, spelled)
    assert response.status_code == 200, response.text
    assert ([p["probability"] for p in response.json()["predictions"]]
            == pytest.approx([p["probability"] for p in plain.json()["predictions"]]))


def test_numbers_may_be_strings_and_categories_any_case(client: TestClient) -> None:
    spelled = {"Pclass": "1", "name": WOMAN["name"], "Sex": " FEMALE ", "Age": "29",
               "fare": " 211.34", "embarked": "s"}
    answer = client.post("/predict", json=spelled)
    assert answer.status_code == 200, answer.text
    plain = client.post("/predict", json=WOMAN).json()["predictions"][0]
    assert answer.json()["predictions"][0]["probability"] == pytest.approx(plain["probability"])
    logged = client.get("/past-predictions", params={"limit": 2}).json()["items"]
    assert {item["input"]["sex"] for item in logged} == {"female"}
    assert {item["input"]["embarked"] for item in logged} == {"S"}


@pytest.mark.parametrize(("change", "field"), [
    ({"fare": False}, "fare"),
    ({"Fare": False}, "fare"),
    ({"pclass": True}, "pclass"),
    ({"pclass": "3.5"}, "pclass"),
    ({"age": "old"}, "age"),
    ({"sex": "robot"}, "sex"),
    ({"name": "N" * 5_000_000}, "name"),
    ({"ticket": "T" * 1_001}, "ticket"),
])
def test_booleans_unknown_categories_and_long_strings_are_422s_naming_the_field(
        client: TestClient, change: dict, field: str) -> None:
    response = client.post("/predict", json={**WOMAN, **change})
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]


def test_entity_ids_may_be_integers(client: TestClient) -> None:
    response = client.post("/predict", json={"entity_ids": [1, "2"]})
    assert response.status_code == 200, response.text
    assert [error["entity_id"] for error in response.json()["errors"]] == ["1", "2"]
    refused = client.post("/predict", json={"entity_ids": [True]})
    assert refused.status_code == 422


def test_the_record_schema_says_what_is_accepted(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    record = document["components"]["schemas"]["TitanicRecord"]["properties"]
    assert record["pclass"]["anyOf"] == [{"type": "integer", "enum": [1, 2, 3]},
                                         {"type": "string", "enum": ["1", "2", "3"]}]
    assert [kind["type"] for kind in record["fare"]["anyOf"]] == ["number", "string", "null"]
    assert record["name"]["maxLength"] == 1_000
    assert record["sex"]["enum"] == ["male", "female"]


def test_customers_example_request_is_accepted_as_written() -> None:
    """The request from the customers design, `"region": "East"`, reads as the spec's `east`."""
    record = record_model(load_spec("customers"))
    example = record.model_validate({"age": 35, "region": "East", "loyalty_points": 1200})
    assert (example.age, example.region, example.loyalty_points) == (35, "east", 1200)
    assert record.model_validate({"region": " WEST "}).region == "west"


def _logged_item(client: TestClient, prediction_id: str, **params: str) -> dict:
    items = client.get("/past-predictions", params={"limit": 1000, **params}).json()["items"]
    item, = [item for item in items if item["id"] == prediction_id]
    return item


def test_past_predictions_carry_the_outcome_given_as_feedback(client: TestClient) -> None:
    answered, unanswered = client.post("/predict", json={"records": [WOMAN, WOMAN]}).json()[
        "predictions"]
    assert client.post("/feedback", json={"id": answered["id"], "actual": 0}).status_code == 200
    given, unknown = (_logged_item(client, p["id"]) for p in (answered, unanswered))
    assert (given["actual"], given["outcome_source"]) == (0, "api")
    assert (unknown["actual"], unknown["outcome_source"]) == (None, None)


def test_one_prediction_in_detail_with_its_explanation(client: TestClient) -> None:
    prediction, = client.post("/predict", json={**WOMAN, "explain": True}).json()["predictions"]
    detail = client.get(f"/past-predictions/{prediction['id']}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    model = client.get("/model").json()
    given = {name: value for name, value in body["input"].items() if value is not None}
    assert given == WOMAN and body["probability"] == prediction["probability"]
    assert (body["model_name"], body["model_version"]) == (model["name"], model["version"])
    assert body["explained_by"] == {"name": model["name"], "version": model["version"]}
    assert body["explained_from"] == "input"  # the fields given, as /predict explains them
    explained = [(item["feature"], item["effect"]) for item in body["explanation"]]
    assert [name for name, _ in explained] == [c["feature"] for c in prediction["contributions"]]
    assert [effect for _, effect in explained] == pytest.approx(
        [c["effect"] for c in prediction["contributions"]])
    assert body["actual"] is None
    missing = client.get("/past-predictions/no-such-id")
    assert missing.status_code == 404 and "no-such-id" in missing.json()["detail"]
    too_long = client.get(f"/past-predictions/{'x' * 37}")
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["path", "prediction_id"]


def test_the_csv_export_holds_the_filtered_predictions_with_outcomes(client: TestClient) -> None:
    since = client.get("/past-predictions", params={"limit": 1}).json()["items"]
    start = "2000-01-01T00:00:00Z" if not since else since[0]["created_at"]
    uploaded = _upload(client, CSV_ROWS).json()["predictions"]
    client.post("/predict", json=WOMAN)  # source api: not in the export below
    client.post("/feedback", json={"id": uploaded[0]["id"], "actual": 1})
    params = {"source": "webapp", "since": start}
    response = client.get("/past-predictions.csv", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    page = client.get("/past-predictions", params={**params, "limit": 1000}).json()
    assert [row["id"] for row in rows] == [item["id"] for item in page["items"]]
    assert [datetime.fromisoformat(row["created_at"]) for row in rows] == [
        datetime.fromisoformat(item["created_at"]) for item in page["items"]]
    assert {p["id"] for p in uploaded} <= {row["id"] for row in rows}
    assert {row["source"] for row in rows} == {"webapp"}
    first = next(row for row in rows if row["id"] == uploaded[0]["id"])
    assert (first["actual"], first["outcome_source"]) == ("1", "api")
    assert first["name"] == "Braund, Mr. Owen Harris" and first["sex"] == "male"
    assert json.loads(first["features"])["title"] == "Mr"
    formula = next(row for row in rows if row["id"] == uploaded[2]["id"])
    assert formula["name"].startswith("'=HYPERLINK")  # defused for spreadsheets
    bad = client.get("/past-predictions.csv", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "since"]


def test_a_request_s_predictions_each_log_their_share_of_its_time(client: TestClient) -> None:
    """Not the whole request's time on each row: 50 rows logged with 50 times the time."""
    started = time.perf_counter()
    predictions = client.post("/predict", json={"records": [WOMAN] * 50}).json()["predictions"]
    elapsed_ms = (time.perf_counter() - started) * 1000
    latencies = [_logged_item(client, p["id"])["latency_ms"] for p in predictions]
    assert len(set(latencies)) == 1
    assert 0 < sum(latencies) <= elapsed_ms


def test_a_prediction_by_entity_id_is_explained_from_the_vector_it_was_scored_on(
        client: TestClient, trained_settings: Settings) -> None:
    """Its input is only the id: the serving model explains the logged feature vector."""
    scored, = client.post("/predict", json=WOMAN).json()["predictions"]
    assert client.get(f"/past-predictions/{scored['id']}").status_code == 200  # now logged
    by_id = f"{scored['id'][:-4]}beef"
    database = Database(trained_settings.db_url)
    with database.session() as session:
        logged = session.get(Prediction, scored["id"])
        session.add(Prediction(**{**{c.key: getattr(logged, c.key)
                                     for c in Prediction.__table__.columns},
                                  "id": by_id, "input": {"entity_id": "p-7"},
                                  "entity_id": "p-7"}))
        features = dict(logged.features)
    database.dispose()
    body = client.get(f"/past-predictions/{by_id}").json()
    assert (body["input"], body["explained_from"]) == ({"entity_id": "p-7"}, "features")
    explained = {item["feature"]: item["effect"] for item in body["explanation"]}
    assert set(explained) <= set(features) and "title" in explained  # view columns, not inputs
    predictor = client.app.state.services["titanic"].predictor
    expected = {c.feature: c.effect for c in vector_contributions(predictor, features)}
    assert explained == pytest.approx(expected)
