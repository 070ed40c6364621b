"""One service serving two datasets: titanic (the default) and `titanic_second`, a copy of
its spec under another name and table, with labels and a probability field of its own, each
with its own champion in one shared home (database, registry, online store)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pandas as pd
import pytest
import requests
import schemathesis
import yaml
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect
from pydantic import SecretStr
from sqlalchemy import select

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, Prediction
from lifeboat.db.models import utcnow
from lifeboat.registry import ModelRegistry
from lifeboat.scoring.predictor import ServedPrediction
from lifeboat.serving import create_app
from lifeboat.serving.app import served_specs
from lifeboat.serving.routes.predict import _csv_response
from lifeboat.serving.schemas import PredictionOut, dataset_schemas
from lifeboat.training import train
from tests.support.browser import TIMEOUT_MS
from tests.support.homes import make_settings, trained_home
from tests.support.live_server import live_server
from tests.support.server_errors import fuzz

KEY = "multi-dataset-key"
SECOND = "titanic_second"
BRAUND = {"pclass": 3, "name": "Braund, Mr. Owen Harris", "sex": "male", "age": 22,
          "sibsp": 1, "parch": 0, "fare": 7.25, "embarked": "S"}


def write_second_spec(folder: Path) -> Path:
    """The bundled titanic spec under another name and table, with its own wording (the
    UI must show it) and a probability field (responses must carry it)."""
    spec = yaml.safe_load(files("lifeboat.datasets").joinpath("specs", "titanic.yaml").read_text())
    spec.update(name=SECOND, table="passengers_second",
                description="Predict survival from the second copy of the passenger list.")
    spec["target"]["probability_field"] = "survival_probability"
    spec["columns"]["pclass"]["label"] = "Passenger class"
    path = folder / f"{SECOND}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def second_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_second_spec(tmp_path_factory.mktemp("specs"))


@pytest.fixture(scope="module")
def second(second_path: Path) -> DatasetSpec:
    return load_spec(str(second_path))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, titanic: DatasetSpec, second: DatasetSpec,
         second_path: Path) -> Settings:
    """Both datasets loaded, materialized and trained in one home; the second has two
    versions (v1 its champion), so a promotion has something to switch to."""
    folder = tmp_path_factory.mktemp("multi") / "home"
    trained_home(folder, titanic)
    settings = trained_home(folder, second)
    database = Database(settings.db_url)
    train(settings, database, second, promote=False)
    database.dispose()
    return settings.model_copy(update={"datasets": [str(second_path)],
                                       "api_key": SecretStr(KEY)})


@pytest.fixture(scope="module")
def client(home: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(home)) as test_client:
        yield test_client


def _predict(client: TestClient, path: str, body: dict) -> dict:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_settings_list_every_dataset_once_the_default_first(
        home: Settings, second_path: Path) -> None:
    again = home.model_copy(update={"datasets": ["titanic", str(second_path), "titanic"]})
    assert [spec.name for spec in served_specs(again)] == ["titanic", SECOND]
    assert [spec.name for spec in served_specs(make_settings(Path("unused")))] == ["titanic"]


def test_two_specs_of_one_name_are_refused(home: Settings, tmp_path: Path) -> None:
    other = yaml.safe_load(files("lifeboat.datasets").joinpath("specs", "titanic.yaml").read_text())
    other["description"] = "Another titanic."
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(other))
    with pytest.raises(Exception, match="two different dataset specs are named 'titanic'"):
        served_specs(home.model_copy(update={"datasets": [str(path)]}))


def test_each_dataset_predicts_with_its_own_champion_and_predict_is_the_default(
        client: TestClient) -> None:
    default = _predict(client, "/predict", BRAUND)
    titanic = _predict(client, "/datasets/titanic/predict", BRAUND)
    other = _predict(client, f"/datasets/{SECOND}/predict", {"records": [BRAUND, BRAUND]})
    assert default["model"]["name"] == titanic["model"]["name"] == "lifeboat-titanic"
    assert other["model"]["name"] == f"lifeboat-{SECOND}"
    assert other["model"]["version"] == client.get(f"/datasets/{SECOND}/model").json()["version"]
    assert default["predictions"][0]["probability"] == titanic["predictions"][0]["probability"]
    assert "survival_probability" not in default["predictions"][0]
    for prediction in other["predictions"]:
        assert prediction["survival_probability"] == prediction["probability"]


def test_predictions_are_logged_and_listed_per_dataset(client: TestClient, home: Settings) -> None:
    mine = _predict(client, f"/datasets/{SECOND}/predict", {**BRAUND, "source": "batch"})
    theirs = _predict(client, "/predict", {**BRAUND, "source": "batch"})
    mine_id, theirs_id = mine["predictions"][0]["id"], theirs["predictions"][0]["id"]
    listed = {name: {item["id"] for item in client.get(
        f"/datasets/{name}/past-predictions", params={"source": "batch", "limit": 1000},
    ).json()["items"]} for name in ("titanic", SECOND)}
    assert mine_id in listed[SECOND] and theirs_id not in listed[SECOND]
    assert theirs_id in listed["titanic"] and mine_id not in listed["titanic"]
    database = Database(home.db_url)
    with database.session() as session:
        logged = dict(session.execute(select(Prediction.id, Prediction.dataset).where(
            Prediction.id.in_([mine_id, theirs_id]))).all())
    database.dispose()
    assert logged == {mine_id: SECOND, theirs_id: "titanic"}


def test_feedback_is_taken_only_for_the_dataset_s_own_predictions(client: TestClient) -> None:
    prediction = _predict(client, "/predict", BRAUND)["predictions"][0]
    wrong = client.post(f"/datasets/{SECOND}/feedback", json={"id": prediction["id"], "actual": 0})
    assert wrong.status_code == 404 and SECOND in wrong.json()["detail"]
    right = client.post("/datasets/titanic/feedback", json={"id": prediction["id"], "actual": 0})
    assert right.status_code == 200 and right.json()["prediction"] == prediction["prediction"]


def test_a_csv_upload_carries_the_probability_field_of_its_dataset(client: TestClient) -> None:
    content = "pclass,name,sex\n1,\"Allen, Miss. Elisabeth Walton\",female\n"
    response = client.post(f"/datasets/{SECOND}/predict/csv", headers={"accept": "text/csv"},
                           files={"file": ("people.csv", content.encode(), "text/csv")})
    assert response.status_code == 200
    row, = csv.DictReader(io.StringIO(response.text))
    assert row["survival_probability"] == row["probability"]


def test_the_datasets_are_listed_with_their_champions(client: TestClient) -> None:
    listed = client.get("/datasets").json()["items"]
    assert [(d["name"], d["default"], d["path"]) for d in listed] == [
        ("titanic", True, "/datasets/titanic"), (SECOND, False, f"/datasets/{SECOND}")]
    assert listed[1]["model_name"] == f"lifeboat-{SECOND}"
    assert listed[1]["description"].startswith("Predict survival from the second copy")
    for dataset in listed:
        assert dataset["champion"] == client.get(f"{dataset['path']}/model").json()["version"]


def test_an_unknown_dataset_is_a_404_naming_the_known_ones(client: TestClient) -> None:
    for path in ("/datasets/nope/predict", "/datasets/nope/", "/datasets/nope"):
        response = client.post(path, json=BRAUND) if path.endswith("predict") else client.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"] == ("no dataset 'nope' is served here; known: "
                                            f"titanic, {SECOND}")
    assert client.get(f"/datasets/{SECOND}/predict").status_code == 405  # a known route
    missing = client.get(f"/datasets/{SECOND}/models/99/curves")
    assert missing.status_code == 404 and "nope" not in missing.json()["detail"]


def test_ready_reports_every_dataset(client: TestClient) -> None:
    ready = client.get("/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["checks"] == {"model": "ok", "database": "ok", "prediction_log": "ok",
                              "features": "ok"}
    assert set(body["datasets"]) == {"titanic", SECOND}
    assert body["datasets"][SECOND]["status"] == "ready"
    assert body["datasets"][SECOND]["model"]["name"] == f"lifeboat-{SECOND}"


def test_one_dataset_without_a_champion_makes_the_service_not_ready(
        trained_settings: Settings) -> None:
    """The customers dataset has neither features nor a model in this home: its routes
    answer 503 and /ready keeps the instance out, while titanic keeps predicting."""
    settings = trained_settings.model_copy(update={"datasets": ["customers"]})
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        datasets = ready.json()["datasets"]
        assert datasets["titanic"]["status"] == "ready"
        assert "no champion" in datasets["customers"]["checks"]["model"]
        assert client.post("/predict", json=BRAUND).status_code == 200
        assert client.post("/datasets/customers/predict", json={"age": 40}).status_code == 503


def test_metrics_tell_the_datasets_apart(client: TestClient) -> None:
    _predict(client, "/predict", BRAUND)
    _predict(client, f"/datasets/{SECOND}/predict", BRAUND)
    text = client.get("/metrics").text
    for dataset in ("titanic", SECOND):
        assert re.search(rf'^lifeboat_predictions_total\{{dataset="{dataset}",', text, re.MULTILINE)
        assert re.search(rf'^lifeboat_model_info\{{dataset="{dataset}",name="lifeboat-{dataset}",'
                         r'version="\d+"\} 1\.0$', text, re.MULTILINE)
        assert re.search(rf'^lifeboat_prediction_latency_seconds_count\{{dataset="{dataset}"\}} '
                         r'[1-9]', text, re.MULTILINE)
        assert re.search(rf'^lifeboat_drift_checks_total\{{dataset="{dataset}"\}} ', text, re.MULTILINE)
    families = re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE)
    assert len(families) == len(set(families)), "a metric family is exposed twice"


def test_the_openapi_document_has_each_dataset_s_schemas(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert {"TitanicRecord", "TitanicSecondRecord"} <= set(schemas)
    assert "survival_probability" in schemas["TitanicSecondPredictionOut"]["properties"]
    assert "survival_probability" not in schemas["PredictionOut"]["properties"]
    paths = document["paths"]
    second_body = paths[f"/datasets/{SECOND}/predict"]["post"]["requestBody"]
    assert "TitanicSecondRecord" in str(second_body)
    assert "/predict" in paths and "/datasets" in paths
    assert "/datasets/titanic/predict" not in paths  # the default's twin is documented once


def test_each_dataset_s_page_renders_its_own_form(client: TestClient, titanic: DatasetSpec,
                                                  second: DatasetSpec) -> None:
    pages = {"titanic": client.get("/").text, SECOND: client.get(f"/datasets/{SECOND}/").text}
    for spec in (titanic, second):
        page = pages[spec.name]
        form = page[page.index('id="predict-form"'):page.index("</form>")]
        assert re.findall(r'\bname="([^"]+)"', form) == spec.input_columns
        assert spec.description in page
    assert "Passenger class" in pages[SECOND] and "Passenger class" not in pages["titanic"]
    assert f'data-api="../../datasets/{SECOND}/"' in pages[SECOND]
    assert 'src="../../ui/static/js/main.js"' in pages[SECOND]
    # The switcher: links relative to each page, the page's own dataset selected.
    assert _options(pages["titanic"]) == [("./", "titanic", True),
                                          (f"datasets/{SECOND}/", SECOND, False)]
    assert _options(pages[SECOND]) == [("../../", "titanic", False),
                                       (f"../../datasets/{SECOND}/", SECOND, True)]
    redirected = client.get(f"/datasets/{SECOND}")
    assert redirected.url.path == f"/datasets/{SECOND}/" and redirected.status_code == 200


def _options(page: str) -> list[tuple[str, str, bool]]:
    switcher = page[page.index('<select id="dataset">'):]
    switcher = switcher[:switcher.index("</select>")]
    return [(value, name, "selected" in attributes) for value, attributes, name in
            re.findall(r'<option value="([^"]*)"([^>]*)>([^<]*)<', switcher)]


def test_one_dataset_s_promotion_leaves_the_other_alone(client: TestClient,
                                                        home: Settings) -> None:
    before = client.get("/datasets").json()["items"]
    assert [d["champion"] for d in before] == ["1", "1"]
    promoted = client.post(f"/datasets/{SECOND}/models/2/promote",
                           headers={"Authorization": f"Bearer {KEY}"})
    assert promoted.status_code == 200 and promoted.json()["serving"] is True
    assert client.get(f"/datasets/{SECOND}/model").json()["version"] == "2"
    assert _predict(client, f"/datasets/{SECOND}/predict", BRAUND)["model"]["version"] == "2"
    assert client.get("/model").json()["version"] == "1"
    assert _predict(client, "/predict", BRAUND)["model"]["version"] == "1"
    assert ModelRegistry(home, "lifeboat-titanic").champion().version == "1"
    assert [d["champion"] for d in client.get("/datasets").json()["items"]] == ["1", "2"]


def test_a_probability_field_is_added_to_predictions_and_csv(titanic: DatasetSpec) -> None:
    customers = load_spec("customers")
    schemas = dataset_schemas(customers)
    fields = schemas.prediction.model_fields
    assert "large_purchase_probability" in fields and set(PredictionOut.model_fields) < set(fields)
    assert dataset_schemas(titanic).prediction is PredictionOut
    answer = schemas.response(model={"name": "m", "version": "1"}, predictions=[
        schemas.prediction(id="a", prediction=1, label="large_purchase", probability=0.75,
                           large_purchase_probability=0.75)])
    assert answer.model_dump()["predictions"][0]["large_purchase_probability"] == 0.75
    clash = customers.model_copy(update={"target": customers.target.model_copy(
        update={"probability_field": "label"})})
    with pytest.raises(Exception, match="would replace a field"):
        dataset_schemas(clash)


def test_the_csv_answer_carries_the_probability_field() -> None:
    customers = load_spec("customers")
    rows = pd.DataFrame({"customer_id": ["c1"], **{name: [None] for name in customers.input_columns},
                         "age": ["40"]})
    served = [ServedPrediction(id="p", created_at=utcnow(), dataset="customers", source="api",
                               input={}, prediction=1, label="large_purchase", probability=0.6,
                               model_name="m", model_version="1", latency_ms=1.0)]
    table = list(csv.DictReader(io.StringIO(_csv_response(customers, rows, served, "c.csv").body
                                            .decode())))
    assert table[0]["large_purchase_probability"] == table[0]["probability"] == "0.6"


# --- in a real server: the OpenAPI document fuzzed, and the browser -----------------------

@pytest.fixture(scope="module")
def base_url(home: Settings) -> Iterator[str]:
    with live_server(create_app(home)) as url:
        yield url


@pytest.mark.slow
def test_no_generated_request_to_the_second_dataset_gets_a_server_error(base_url: str) -> None:
    sent, errors = [], []
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            if not operation.path.startswith(f"/datasets/{SECOND}/"):
                continue
            for mode in schemathesis.GenerationMode:
                fuzz(operation, mode, base_url, session, sent, errors)
    assert not errors, errors[:5]
    assert len(sent) >= 1000, f"only {len(sent)} requests were generated"


@pytest.mark.slow
def test_the_ui_switches_dataset_and_predicts_on_the_second(
        browser: Browser, base_url: str, screenshots: Path) -> None:  # noqa: F811 (fixtures)
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda response: (response.status == 404 or response.status >= 500)
            and errors.append(f"{response.status} {response.url}"))
    page.goto(f"{base_url}/")
    expect(page.locator("#champion")).to_contain_text("Champion: lifeboat-titanic v")
    expect(page.get_by_label("Ticket class")).to_be_visible()

    page.get_by_label("Dataset").select_option(SECOND)
    expect(page).to_have_url(re.compile(rf"{re.escape(base_url)}/datasets/{SECOND}/(#.*)?$"))
    expect(page.locator("#champion")).to_contain_text(f"Champion: lifeboat-{SECOND} v")
    expect(page.get_by_label("Dataset")).to_have_value(f"../../datasets/{SECOND}/")
    page.get_by_label("Name").fill("Allen, Miss. Elisabeth Walton")
    page.get_by_label("Sex").select_option("female")
    page.get_by_label("Passenger class").select_option("1")
    with page.expect_response(lambda r: r.url == f"{base_url}/datasets/{SECOND}/predict") as sent:
        page.get_by_role("button", name="Predict").click()
    assert sent.value.ok
    expect(page.locator("#verdict")).to_contain_text("Survived")
    expect(page.locator("#predict-meta")).to_contain_text(f"Model lifeboat-{SECOND} v")
    page.screenshot(path=screenshots / "second-dataset.png", full_page=True)

    page.get_by_role("tab", name="Past predictions").click()
    expect(page.locator("#past-table tbody")).to_contain_text("Allen, Miss. Elisabeth Walton")
    page.get_by_label("Dataset").select_option("titanic")
    expect(page).to_have_url(re.compile(rf"{re.escape(base_url)}/(#.*)?$"))
    context.close()
    assert errors == []
