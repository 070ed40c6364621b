"""The Models tab: versions, the gate's decisions, a classification report per version and
two side by side, retraining, and the champion's history.

In a real headless Chromium (Debian's, driven by Playwright), against the real app served
by uvicorn with a trained champion.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import mlflow.sklearn
import pytest
from playwright.sync_api import Browser, Page, expect
from pydantic import SecretStr
from sklearn.dummy import DummyClassifier

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.features import feature_view
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.registry import ModelRegistry, experiment_id
from lifeboat.serving import create_app
from lifeboat.synthetic.passengers import synthetic_passengers
from lifeboat.training import train
from tests.support.homes import trained_home
from tests.support.live_server import live_server
from tests.support.ui import ADMIN_KEY, expect_change, open_tab, ui_tab

pytestmark = pytest.mark.slow
LABELS = {"test_roc_auc": "ROC AUC", "test_accuracy": "Accuracy", "test_f1": "F1 score",
          "test_precision": "Precision", "test_recall": "Recall", "test_brier": "Brier score"}
REPORTED = [*LABELS, "test_ece"]  # the report's metrics of a dataset without a baseline


@pytest.fixture(scope="module")
def compared_home(titanic: DatasetSpec, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A champion, a second version of the other kind of model (trained without the gate):
    two versions that really differ, to compare; and a third registered as a version was
    before Lifeboat logged curves, importance or its search."""
    settings = trained_home(tmp_path_factory.mktemp("compared") / "home", titanic)
    registry = ModelRegistry(settings, titanic.model_name)
    champion = registry.get("1").model_type
    other = "logistic_regression" if champion != "logistic_regression" else "gradient_boosting"
    database = Database(settings.db_url)
    train(settings, database, titanic.model_copy(update={"training": titanic.training.model_copy(
        update={"candidates": [other]})}), promote=False)
    database.dispose()
    with mlflow.start_run(experiment_id=experiment_id(registry.client, settings, titanic.name)):
        mlflow.sklearn.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="model",
                                 registered_model_name=titanic.model_name,
                                 serialization_format="cloudpickle")
    return settings


@pytest.fixture(scope="module")
def compared_url(compared_home: Settings) -> Iterator[str]:
    with live_server(create_app(compared_home.model_copy(update={
            "api_key": SecretStr(ADMIN_KEY)}))) as base_url:
        yield f"{base_url}/"


@pytest.fixture
def compared_page(browser: Browser, compared_url: str) -> Iterator[Page]:
    with ui_tab(browser, compared_url) as tab:
        yield tab


def _model_type(name: str) -> str:
    return name.replace("_", " ").capitalize()


def test_models_show_each_threshold_the_gate_s_evidence_and_a_version_at_its_threshold(
        gated_page: Page, gated_url: str, titanic: DatasetSpec, screenshots: Path) -> None:
    versions = {v["version"]: v for v in httpx.get(f"{gated_url}models").json()["versions"]}
    gate = versions["2"]["promotion"]
    open_tab(gated_page, "Models")
    challenger = gated_page.locator('#models-table tbody[data-version="2"]')
    expect(challenger.locator("td.num").first).to_have_text(f"{versions['2']['threshold']:.3f}")
    expect(challenger.locator(".gate .pill")).to_have_text("refused")
    low, high = gate["interval"]
    expect(challenger.locator(".gate summary")).to_contain_text(
        f"{gate['metric']} {gate['challenger_score']:.4f} vs v1 {gate['champion_score']:.4f}, "
        f"{gate['delta']:+.4f} [{low:+.4f}, {high:+.4f}] on {gate['heldout_rows']} held-out + "
        f"{gate['recent_rows']} labelled")
    expect(challenger.locator(".gate .reason")).to_be_hidden()
    champion = gated_page.locator('#models-table tbody[data-version="1"]')
    expect(champion).to_contain_text("★ Champion")
    expect(champion.locator(".gate")).to_contain_text("promoted first model")
    for curve in ("#chart-roc", "#chart-calibration"):  # plotly draws its traces as SVG paths
        expect(gated_page.locator(f"{curve} .scatterlayer .trace").first).to_be_visible()

    # The champion is shown at its threshold first; opening v2's decision picks v2.
    expect(gated_page.get_by_label("Version", exact=True)).to_have_value("1")
    expect(gated_page.locator("#confusion caption")).to_have_text("v1 at threshold 0.500")
    challenger.locator(".gate summary").click()
    expect(challenger.locator(".gate .reason")).to_have_text(gate["reason"])
    expect(gated_page.get_by_label("Version", exact=True)).to_have_value("2")
    expect(gated_page.locator("#confusion caption")).to_have_text(
        f"v2 at threshold {versions['2']['threshold']:.3f}")
    at = httpx.get(f"{gated_url}models/2/curves").json()["threshold"]
    matrix = gated_page.locator("#confusion")
    expect(matrix.locator("td.num")).to_have_text([str(n) for row in at["confusion"] for n in row])
    died, survived = titanic.target.labels[0], titanic.target.labels[1]
    expect(matrix.locator("thead th")).to_have_text([f"predicted {died}", f"predicted {survived}"])
    expect(matrix.locator("tbody th")).to_have_text([f"actually {died}", f"actually {survived}"])

    expect(gated_page.locator("#chart-pr .scatterlayer .trace")).to_have_count(2)
    expect(gated_page.locator("#chart-pr")).to_contain_text(f"threshold {at['value']:.3f}")
    marked = gated_page.locator("#chart-pr").evaluate("chart => chart.data[1]")
    assert (marked["x"], marked["y"]) == ([at["recall"]], [at["precision"]])
    gated_page.screenshot(path=screenshots / "models.png", full_page=True)


def test_the_versions_table_names_metrics_models_and_runs_and_fits_its_card(
        gated_page: Page, gated_url: str) -> None:
    versions = httpx.get(f"{gated_url}models").json()["versions"]
    open_tab(gated_page, "Models")
    table = gated_page.locator("#models-table")
    for key, label in LABELS.items():
        expect(table.locator(f'thead th[title="{key}"]')).to_have_text(label)
    for version in versions:
        row = table.locator(f"tbody[data-version=\"{version['version']}\"]")
        expect(row.locator(".model-type")).to_have_text(_model_type(version["model_type"]))
        chosen = sorted(version["hyperparameters"].items())
        assert chosen
        expect(row.locator(".hyperparameter")).to_have_count(len(chosen))
        for name, value in chosen:
            expect(row.locator(f'.hyperparameter[title="{name} = {value}"]')).to_be_visible()
        run = row.locator(".run-id")  # no MLflow UI configured: the id, not a link
        expect(run).to_have_text(f"run {version['run_id'][:8]}")
        expect(run).to_have_attribute("title", f"MLflow run {version['run_id']}; set "
                                      "LIFEBOAT_MLFLOW_UI_URL to link it to the MLflow UI")
    card = table.locator("xpath=ancestor::div[contains(@class, 'card')][1]").bounding_box()
    shown = table.bounding_box()
    assert shown["x"] >= card["x"] and shown["x"] + shown["width"] <= card["x"] + card["width"]
    assert table.evaluate("t => t.parentElement.scrollWidth <= t.parentElement.clientWidth")


def test_the_champion_history_lists_each_change_and_a_rollback_needs_the_key(
        gated_page: Page, gated_url: str, screenshots: Path) -> None:
    open_tab(gated_page, "Models")
    changes = gated_page.locator("#history-table tbody tr")
    expect(changes).to_have_count(1)
    expect_change(changes.first, "none → v1", "training", "first model")

    roll_back = gated_page.get_by_role("button", name="Roll back")
    refused = gated_page.locator("#rollback-error")
    roll_back.click()
    expect(refused).to_have_text("Not rolled back: enter the admin API key first.")
    gated_page.get_by_label("API key").fill("wrong")
    roll_back.click()
    expect(refused).to_have_text("Not rolled back: wrong API key.")
    gated_page.get_by_label("API key").fill(ADMIN_KEY)
    roll_back.click()  # v1 replaced no champion: the server's 409 says so
    expect(refused).to_contain_text("nothing to roll back to")

    gated_page.get_by_role("button", name="Promote v2").click()
    expect(gated_page.locator("#champion")).to_contain_text("Champion: lifeboat-titanic v2")
    expect_change(changes.first, "v1 → v2", "api", "promoted by an admin")
    roll_back.click()
    expect(gated_page.locator("#champion")).to_contain_text("Champion: lifeboat-titanic v1")
    expect(gated_page.locator("#history-status")).to_have_text("Rolled back to v1.")
    expect(refused).to_be_empty()
    expect(changes).to_have_count(3)
    expect_change(changes.first, "v2 → v1", "api", "rollback from v2")
    champion = gated_page.locator('#models-table tbody[data-version="1"]')
    expect(champion).to_contain_text("★ Champion")
    assert httpx.get(f"{gated_url}models").json()["champion"] == "1"
    gated_page.screenshot(path=screenshots / "models-history.png", full_page=True)


def test_two_versions_side_by_side(compared_page: Page, compared_url: str, titanic: DatasetSpec,
                                   screenshots: Path) -> None:
    first, second = (httpx.get(f"{compared_url}models/{v}/report").json() for v in ("1", "2"))
    assert first["model_type"] != second["model_type"]
    open_tab(compared_page, "Models")
    compared_page.get_by_label("Compare with").select_option("2")

    metrics = compared_page.locator("#report-metrics")
    expect(metrics.locator("thead th")).to_have_text(["Metric", "v1", "v2", "v2 − v1"])
    expect(metrics.locator("tbody tr")).to_have_count(len(REPORTED))
    for key in REPORTED:
        a, b = first["metrics"][key], second["metrics"][key]
        row = metrics.locator(f'tbody tr[data-metric="{key}"]')
        expect(row.locator("th")).to_have_attribute("title", key)
        expect(row.locator("td")).to_have_text([f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}"])

    for version, table in ((first, "#confusion"), (second, "#confusion-compare")):
        at = version["curves"]["threshold"]
        matrix = compared_page.locator(table)
        expect(matrix.locator("caption")).to_have_text(
            f"v{version['version']} at threshold {at['value']:.3f}")
        expect(matrix.locator("td.num")).to_have_text([str(n) for row in at["confusion"]
                                                       for n in row])
    beside = [compared_page.locator(table).bounding_box()
              for table in ("#confusion", "#confusion-compare")]
    assert beside[0]["y"] == beside[1]["y"] and beside[0]["x"] + beside[0]["width"] < beside[1]["x"]
    for curve, lines in (("#chart-roc", 3), ("#chart-calibration", 3), ("#chart-pr", 4)):
        expect(compared_page.locator(f"{curve} .scatterlayer .trace")).to_have_count(lines)
    roc = compared_page.locator("#chart-roc").evaluate("chart => chart.data.map(t => t.name)")
    assert roc == ["chance / perfect", "v1", "v2"]

    importance = compared_page.locator("#chart-importance")
    expect(importance.locator(".barlayer .trace")).to_have_count(2)
    bars = importance.evaluate("chart => chart.data.map(t => [t.name, t.y, t.x])")
    ranked = first["feature_importance"]["features"]
    assert [name for name, _, _ in bars] == ["v1", "v2"]
    assert bars[0][1] == [f["name"] for f in reversed(ranked)]
    assert sorted(bars[1][1]) == sorted(feature_view(titanic).columns)
    assert bars[0][2] == [f["importance"] for f in reversed(ranked)]

    parameters = compared_page.locator("#report-parameters")
    model_type = parameters.locator("tr", has=compared_page.get_by_role("rowheader", name="Model type"))
    expect(model_type).to_have_class("differs")
    expect(model_type.locator("td")).to_have_text([_model_type(first["model_type"]),
                                                   _model_type(second["model_type"])])
    chosen = {**first["hyperparameters"], **second["hyperparameters"]}
    for name in chosen:  # each one's chosen parameters, marked where they differ
        row = parameters.locator("tr", has=compared_page.get_by_role("rowheader", name=name,
                                                                     exact=True))
        differs = first["hyperparameters"].get(name) != second["hyperparameters"].get(name)
        expect(row).to_have_class("differs" if differs else "")
    differing = parameters.locator("tbody tr.differs")
    expect(compared_page.locator("#parameters-note")).to_contain_text(
        f"{differing.count()} of {parameters.locator('tbody tr:not(.group)').count()} differ")
    compared_page.screenshot(path=screenshots / "models-compare.png", full_page=True)


def test_a_version_logged_before_reports_existed_says_what_it_lacks(
        compared_page: Page, compared_url: str) -> None:
    open_tab(compared_page, "Models")
    compared_page.locator('#models-table tbody[data-version="3"]').click()
    expect(compared_page.locator("#confusion caption")).to_have_text("v3 has no confusion matrix")
    expect(compared_page.locator("#confusion-note")).to_have_text(
        "v3 was trained before its curves and confusion matrix were logged.")
    expect(compared_page.locator("#importance-note")).to_have_text(
        "v3 was trained before feature importance was logged.")
    expect(compared_page.locator("#chart-importance")).to_have_text("No data yet.")
    expect(compared_page.locator("#chart-roc")).to_have_text("No data yet.")
    expect(compared_page.locator('#models-table tbody[data-version="3"] .model-type')).to_have_text("–")

    compared_page.get_by_label("Compare with").select_option("1")  # v1's beside it, all there
    expect(compared_page.locator("#chart-roc .scatterlayer .trace")).to_have_count(2)
    expect(compared_page.locator("#chart-importance .barlayer .trace")).to_have_count(1)
    expect(compared_page.locator("#importance-note")).to_contain_text(
        "v3 was trained before feature importance was logged.")
    expect(compared_page.locator("#confusion-compare caption")).to_contain_text("v1 at threshold")


def test_the_retrain_button_needs_the_key_and_says_what_the_retrain_did(
        compared_page: Page, compared_url: str, compared_home: Settings, titanic: DatasetSpec,
        tmp_path: Path) -> None:
    open_tab(compared_page, "Models")
    button = compared_page.get_by_role("button", name="Retrain")
    refused = compared_page.locator("#models-error")
    button.click()
    expect(refused).to_have_text("Not retrained: enter the admin API key first.")
    compared_page.get_by_label("API key").fill("wrong")
    button.click()
    expect(refused).to_have_text("Not retrained: wrong API key.")
    assert httpx.get(f"{compared_url}retrain").json()["state"] == "idle"

    compared_page.get_by_label("API key").fill(ADMIN_KEY)
    button.click()
    said = compared_page.locator("#retrain-status")
    expect(said).to_contain_text("nothing retrained", timeout=60_000)  # no new labels since v1
    expect(refused).to_be_empty()
    status = httpx.get(f"{compared_url}retrain").json()
    assert status["state"] == "succeeded" and status["reason"].startswith("no new labels")
    expect(said).to_contain_text(status["reason"])
    expect(button).to_be_enabled()

    _new_labels(compared_home, titanic, tmp_path)
    button.click()
    expect(said).to_contain_text("retraining since")
    expect(button).to_be_disabled()
    expect(said).to_contain_text(re.compile(r"v4 (promoted|not promoted)"), timeout=300_000)
    status = httpx.get(f"{compared_url}retrain").json()
    verdict = "promoted" if status["promoted"] else "not promoted"
    expect(said).to_contain_text(f"v{status['version']} {verdict} {status['reason']}")
    expect(compared_page.locator('#models-table tbody[data-version="4"]')).to_be_visible()
    expect(button).to_be_enabled()


def _new_labels(settings: Settings, titanic: DatasetSpec, folder: Path) -> None:
    """Labelled passengers arriving after v1 was trained: something for a retrain to learn."""
    arrivals = folder / "arrivals.csv"
    synthetic_passengers(10, seed=2).to_csv(arrivals, index=False)
    database = Database(settings.db_url)
    ingest_file(database, titanic, str(arrivals), LandingZone(settings.landing_url))
    database.dispose()
