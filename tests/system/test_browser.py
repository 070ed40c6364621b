"""The web UI in a real headless Chromium (Debian's, driven by Playwright), against the real
app served by uvicorn with a trained champion.

A screenshot of each tab is saved by each run, in `.pytest_cache/d/browser-screenshots/`. Without
Chromium the tests fail, locally as in CI: a skip would hide them (`make test` installs it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect
from pydantic import SecretStr

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, upgrade
from lifeboat.errors import JobFailed
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.orchestration import JobContext, run
from lifeboat.serving import create_app
from lifeboat.synthetic.passengers import synthetic_passengers, write_passengers
from lifeboat.training import train
from tests.support.browser import TIMEOUT_MS
from tests.support.homes import trained_home
from tests.support.live_server import live_server
from tests.support.served_history import drift_and_feedback_history

pytestmark = pytest.mark.slow

ADMIN_KEY = "browser-test-key"


@pytest.fixture(scope="module")
def settings(trained_settings: Settings, titanic: DatasetSpec,
             tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The trained champion, logging into a database of its own that has an ingestion
    history (one clean file, one with bad rows) for the Monitoring tab."""
    folder = tmp_path_factory.mktemp("browser")
    database_url = f"sqlite:///{folder / 'lifeboat.db'}"
    database = Database(database_url)
    upgrade(database)
    _ingest_history(database, titanic, folder)
    database.dispose()
    return trained_settings.model_copy(update={
        "database_url": database_url, "api_key": SecretStr(ADMIN_KEY),
        "drift_window_size": 100})


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    with live_server(create_app(settings)) as base_url:
        yield f"{base_url}/"


@pytest.fixture(scope="module")
def gated_url(titanic: DatasetSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry of its own (the Models tests promote and roll back), where the gate compared
    a second version with the first: the same data and seed train the same model, so it
    refused v2 (a tie). Its page under the dataset's prefix, as a service of several
    datasets serves it."""
    settings = trained_home(tmp_path_factory.mktemp("gated") / "home", titanic)
    database = Database(settings.db_url)
    train(settings, database, titanic, promote=True)
    database.dispose()
    with live_server(create_app(settings.model_copy(update={
            "api_key": SecretStr(ADMIN_KEY)}))) as base_url:
        yield f"{base_url}/datasets/{titanic.name}/"


def _ingest_history(database: Database, titanic: DatasetSpec, folder: Path) -> None:
    passengers = pd.read_csv(titanic.bundled_path(), dtype=str, keep_default_na=False)
    clean, dirty = passengers.iloc[:60], passengers.iloc[60:100].copy()
    dirty.loc[dirty.index[:3], "age"] = "-5"
    dirty.loc[dirty.index[3:5], "sex"] = "unknown"
    zone = LandingZone(str(folder / "landing"))
    for name, rows in (("clean.csv", clean), ("dirty.csv", dirty)):
        rows.to_csv(folder / name, index=False)
        ingest_file(database, titanic, str(folder / name), zone)


@contextmanager
def ui_tab(browser: Browser, url: str) -> Iterator[Page]:
    """A fresh tab on the UI page at `url`. A JavaScript error, a missing file or a server
    error fails the test (4xx answers to a POST are the expected replies to bad input, a
    wrong key or nothing to roll back to)."""
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("response", lambda response: (response.status == 404 or response.status >= 500)
           and errors.append(f"{response.status} {response.url}"))
    tab.goto(url)
    expect(tab.locator("#champion")).to_contain_text("Champion: lifeboat-titanic v1")
    yield tab
    context.close()
    assert errors == []


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    with ui_tab(browser, base_url) as tab:
        yield tab


@pytest.fixture
def gated_page(browser: Browser, gated_url: str) -> Iterator[Page]:
    with ui_tab(browser, gated_url) as tab:
        yield tab


@pytest.fixture
def passengers_csv(titanic: DatasetSpec, tmp_path: Path) -> tuple[Path, list[str]]:
    """Seven rows of the bundled passenger list, from every class, as they are in the file."""
    rows = pd.read_csv(titanic.bundled_path(), dtype=str, keep_default_na=False).iloc[::200]
    path = tmp_path / "passengers.csv"
    rows.to_csv(path, index=False)
    return path, rows["name"].tolist()


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    expect(page.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true")


def upload(page: Page, csv: Path) -> None:
    page.locator("#csv-file").set_input_files(csv)
    with page.expect_response(lambda response: "/predict/csv" in response.url) as answer:
        page.get_by_role("button", name="Score the file").click()
    assert answer.value.ok, answer.value.text()


def test_filling_the_form_shows_a_prediction_and_what_drove_it(
        page: Page, screenshots: Path) -> None:
    page.get_by_label("Name").fill("Allen, Miss. Elisabeth Walton")
    page.get_by_label("Sex").select_option("female")
    page.get_by_label("Ticket class").select_option("1")
    page.get_by_label("Fare (£)").fill("211.34")
    page.get_by_role("button", name="Predict").click()

    expect(page.locator("#verdict")).to_contain_text("survived")
    expect(page.locator("#gauge .main-svg").first).to_be_visible()
    first_reason = page.locator("#contributions li").first
    expect(first_reason).to_contain_text(re.compile("[▲▼] [+−][0-9.]+ pts"))
    page.screenshot(path=screenshots / "1-predict.png", full_page=True)


def test_bad_fields_are_named_next_to_the_field(page: Page) -> None:
    page.get_by_label("Age (years)").fill("250")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#e-age")).not_to_be_empty()
    expect(page.locator("#predict-output")).to_be_hidden()

    # Past the browser's checks, the server's 422 lands next to the same field.
    page.locator("#f-age").evaluate("input => input.removeAttribute('max')")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#e-age")).to_contain_text("less than or equal to 100")
    expect(page.locator("#f-age")).to_have_attribute("aria-invalid", "true")


def test_an_uploaded_csv_shows_every_row_and_downloads(
        page: Page, passengers_csv: tuple[Path, list[str]], screenshots: Path) -> None:
    csv, names = passengers_csv
    upload(page, csv)
    rows = page.locator("#csv-table tbody tr")
    expect(rows).to_have_count(len(names))
    for row, name in zip(rows.all(), names, strict=True):
        expect(row).to_contain_text(name)
    expect(page.locator("#csv-summary")).to_contain_text(f"{len(names)} rows scored")
    page.screenshot(path=screenshots / "2-predict-csv.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download results (CSV)").click()
    scored = pd.read_csv(download.value.path())
    assert scored["name"].tolist() == names
    assert scored["probability"].between(0, 1).all()


def test_uploaded_rows_appear_under_past_predictions(
        page: Page, passengers_csv: tuple[Path, list[str]], screenshots: Path) -> None:
    csv, names = passengers_csv
    for _ in range(2):  # more rows than one page holds
        upload(page, csv)

    open_tab(page, "Past predictions")
    page.get_by_label("Source").select_option("webapp")
    page.get_by_label("Per page").select_option("10")
    page.get_by_role("button", name="Apply").click()
    table = page.locator("#past-table tbody")
    expect(page.locator("#past-status")).to_contain_text("1–10 of")
    for name in names:
        expect(table).to_contain_text(name)
    page.screenshot(path=screenshots / "3-past-predictions.png", full_page=True)

    page.get_by_role("button", name="Older →").click()
    expect(page.locator("#past-status")).to_contain_text("11–")
    page.get_by_label("Source").select_option("batch")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#past-status")).to_have_text("0 predictions")


def test_monitoring_charts_predictions_quality_drift_and_live_accuracy(
        page: Page, passengers_csv: tuple[Path, list[str]], screenshots: Path,
        settings: Settings, titanic: DatasetSpec, base_url: str) -> None:
    upload(page, passengers_csv[0])
    drift_and_feedback_history(settings, titanic, base_url)
    open_tab(page, "Monitoring")
    expect(page.locator("#monitoring-empty")).to_be_hidden()
    for chart in ("over-time", "probabilities", "quality", "issues", "drift", "accuracy"):
        expect(page.locator(f"#chart-{chart} .main-svg").first).to_be_visible()
    expect(page.locator("#chart-issues")).to_contain_text("out_of_range")
    expect(page.locator("#chart-drift")).to_contain_text("drift threshold")
    expect(page.locator("#chart-accuracy .scatterlayer .point").first).to_be_visible()
    summary = httpx.get(f"{base_url}monitoring/summary").json()
    live, check = summary["live"], summary["drift"][-1]
    expect(page.locator("#live-accuracy")).to_have_text(f"{live['accuracy'] * 100:.1f}%")
    expect(page.locator("#live-roc-auc")).to_have_text(f"{live['roc_auc']:.3f}")
    expect(page.locator("#estimated-accuracy")).to_have_text(
        f"{check['estimated_accuracy'] * 100:.1f}%")
    expect(page.locator("#live-basis")).to_contain_text(
        f"v1, on its {live['samples']} latest labelled predictions")
    estimated = page.locator("#chart-accuracy").evaluate(
        "chart => chart.data.find((trace) => trace.name === 'estimated')")
    assert estimated["y"][-1] == pytest.approx(check["estimated_accuracy"])
    page.screenshot(path=screenshots / "4-monitoring.png", full_page=True)


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
    gated_page.screenshot(path=screenshots / "5-models.png", full_page=True)


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
    gated_page.screenshot(path=screenshots / "5-models-history.png", full_page=True)


def test_with_keys_on_every_scope_the_page_works_once_a_key_is_entered(
        browser: Browser, settings: Settings, passengers_csv: tuple[Path, list[str]]) -> None:
    keyed = settings.model_copy(update={"read_keys": [SecretStr("reader-key")],
                                        "predict_keys": [SecretStr("scorer-key")],
                                        "feedback_keys": [SecretStr("feedback-key")]})
    with live_server(create_app(keyed)) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        tab.goto(f"{url}/")
        expect(tab.locator("#champion")).to_have_text("Enter the API key to see the model")
        tab.get_by_label("API key").fill(ADMIN_KEY)  # an admin key opens every scope
        tab.get_by_label("API key").press("Enter")
        expect(tab.locator("#champion")).to_contain_text("Champion: lifeboat-titanic v1")
        upload(tab, passengers_csv[0])
        expect(tab.locator("#csv-table tbody tr")).to_have_count(len(passengers_csv[1]))
        tab.reload()  # the key is kept for the session
        expect(tab.locator("#champion")).to_contain_text("Champion: lifeboat-titanic v1")
        open_tab(tab, "Past predictions")
        expect(tab.locator("#past-table tbody tr").first).to_contain_text("webapp")
        context.close()


def expect_change(row: Locator, change: str, by: str, reason: str) -> None:
    expect(row.locator("td")).to_have_text([re.compile(r"\d"), change, by, reason])


def test_jobs_show_each_run_its_counts_and_a_failure_s_error(
        page: Page, screenshots: Path, settings: Settings, titanic: DatasetSpec,
        tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    context = JobContext(settings.model_copy(update={"storage_url": str(landing)}),
                         Database(settings.db_url), titanic)
    (landing / "raw").mkdir(parents=True)
    write_passengers(synthetic_passengers(20, seed=31), landing / "raw" / "arrivals.csv")
    run(context, "ingest", "schedule")
    with pytest.raises(JobFailed):
        run(context, "ingest_file", "watch", source="/no/such.csv")

    open_tab(page, "Jobs")
    rows = page.locator("#jobs-table tbody tr")
    failed, ingested = rows.nth(0), rows.nth(1)
    expect(failed).to_contain_text("ingest_file")
    expect(failed).to_contain_text("watch")
    expect(failed.locator(".pill.failed")).to_have_text("failed")
    expect(failed.locator(".run-error")).to_contain_text(re.compile("no such", re.IGNORECASE))
    expect(failed.locator(".run-error")).to_have_css("color", "rgb(192, 57, 43)")
    expect(ingested.locator(".pill.up")).to_have_text("succeeded")
    expect(ingested).to_contain_text("rows_loaded 20")
    expect(ingested).to_contain_text(re.compile(r"\d\.\d s"))
    page.screenshot(path=screenshots / "6-jobs.png", full_page=True)

    # A run that ends while the tab is open shows up without a click.
    run(context, "score", "schedule")
    expect(rows.nth(0)).to_contain_text("score")
    context.database.dispose()

    page.get_by_label("Job", exact=True).select_option("ingest_file")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("ingest_file")


@pytest.mark.parametrize(("page_path", "predict_operation"), [
    ("docs", "#operations-predict-predict_predict_post"),
    ("redoc", '[id="operation/predict_predict_post"]'),
])
def test_the_api_docs_render_with_the_network_blocked(
        browser: Browser, base_url: str, screenshots: Path, page_path: str,
        predict_operation: str) -> None:
    """Every request to another host is aborted, as on a machine with no network: the page
    still lists the operations, so nothing it needs comes from a CDN."""
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    app_host = httpx.URL(base_url).netloc.decode()
    blocked: list[str] = []

    def only_the_app(route: Route) -> None:
        if httpx.URL(route.request.url).netloc.decode() == app_host:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_app)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("response", lambda response: response.status >= 400
           and errors.append(f"{response.status} {response.url}"))
    tab.goto(f"{base_url}{page_path}")
    operation = tab.locator(predict_operation)
    expect(operation).to_be_visible()
    expect(operation).to_contain_text("Score one raw record")
    expect(tab.get_by_text("/monitoring/summary").first).to_be_attached()
    tab.screenshot(path=screenshots / f"7-{page_path}.png")
    context.close()
    assert (errors, blocked) == ([], [])
