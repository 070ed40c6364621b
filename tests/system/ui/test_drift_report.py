"""The drift report's page, in a real headless Chromium against the real app: a summary,
features by severity, a plot per feature, the history of checks, and the way back.

Three checks, oldest first: of the bundled list's first hundred passengers (all of first
class: the list is in class order), of a hundred drawn at random from it, and of a hundred
passengers aged 70 to 80 paying a fortune."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Browser, Page, expect

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.monitoring.drift_check import check_drift
from tests.support.served_history import drift_and_feedback_history
from tests.support.ui import ui_tab

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reports(settings: Settings, titanic: DatasetSpec, base_url: str) -> list[dict]:
    """The three checks' reports, newest first, as GET /drift/reports lists them."""
    drift_and_feedback_history(settings, titanic, base_url)
    passengers = pd.read_csv(titanic.bundled_path(), na_values=titanic.missing_values,
                             keep_default_na=False).sample(settings.drift_window_size,
                                                           random_state=4)
    drawn = [{key: value for key, value in row.items() if not pd.isna(value)}
             for row in passengers[titanic.input_columns].astype(object).to_dict("records")]
    elderly = [{"pclass": 1, "name": row["name"], "sex": row["sex"], "age": 70 + n % 10,
            "fare": 400.0 + n, "embarked": "S"} for n, row in enumerate(drawn)]
    database = Database(settings.db_url)
    for records in (drawn, elderly):
        logged = _logged(base_url) + len(records)
        assert httpx.post(f"{base_url}predict", json={"records": records}, timeout=60).is_success
        _wait_until_logged(base_url, logged)
        check_drift(settings, database, titanic)
    database.dispose()
    listed = httpx.get(f"{base_url}drift/reports").json()
    assert listed["total"] == 3
    return listed["items"]


def _logged(base_url: str) -> int:
    return httpx.get(f"{base_url}past-predictions", params={"limit": 1}).json()["total"]


def _wait_until_logged(base_url: str, count: int) -> None:
    """The service writes its predictions to the database shortly after answering; the
    check must see the ones just made, not the window before them."""
    deadline = time.monotonic() + 30
    while _logged(base_url) < count:
        assert time.monotonic() < deadline, f"{count} predictions never reached the database"
        time.sleep(0.1)


@pytest.fixture
def report_page(browser: Browser, base_url: str, reports: list[dict]) -> Iterator[Page]:
    with ui_tab(browser, base_url) as tab:
        tab.goto("drift/report")
        yield tab


def test_the_report_sums_up_the_check(report_page: Page, base_url: str,
                                      screenshots: Path) -> None:
    latest = httpx.get(f"{base_url}drift").json()
    drifted = [test["feature"] for test in latest["features"] if test["drifted"]]
    assert latest["drifted"] and {"age", "fare"} <= set(drifted)
    expect(report_page.locator("#verdict")).to_have_text(
        f"Drift detected: {len(drifted)} of 7 features drifted")
    expect(report_page.locator("#drifted-count")).to_have_text(f"{len(drifted)} of 7")
    expect(report_page.locator("#drift-share")).to_have_text(
        f"{latest['drift_share'] * 100:.1f}%")
    expect(report_page.locator("#window-size")).to_have_text("100 predictions")
    expect(report_page.locator("#estimated-accuracy")).to_have_text(
        f"{latest['estimated_accuracy'] * 100:.1f}%")
    expect(report_page.locator("#threshold")).to_have_text("0.0071")  # 0.05 / 7
    expect(report_page.locator("#method")).to_contain_text("Bonferroni correction at p = 0.05")
    expect(report_page.locator("#reference")).to_contain_text("lifeboat-titanic v1")
    expect(report_page.locator("#window")).to_contain_text("the latest 100 predictions of v1")
    expect(report_page.locator("#features .drill-plot .main-svg").first).to_be_visible()
    report_page.screenshot(path=screenshots / "drift-report.png", full_page=True)


def test_features_come_most_drifted_first_and_each_opens_its_plot(
        report_page: Page, base_url: str) -> None:
    features = httpx.get(f"{base_url}drift").json()["features"]
    by_severity = sorted(features, key=lambda test: (test["p_value"] is None,
                                                     test["p_value"] or 0.0))
    rows = report_page.locator("#features tbody.test")
    assert rows.evaluate_all("rows => rows.map((row) => row.dataset.feature)") == [
        test["feature"] for test in by_severity]
    assert rows.evaluate_all("rows => rows.map((row) => row.classList.contains('drifted'))") == [
        test["drifted"] for test in by_severity]
    last = rows.last
    expect(last.locator(".drill")).to_be_hidden()
    last.get_by_role("button").click()
    expect(last.get_by_role("button")).to_have_attribute("aria-expanded", "true")
    plot = last.locator(".drill-plot")
    expect(plot.locator(".main-svg").first).to_be_visible()
    assert plot.evaluate("plot => plot.data.map((trace) => trace.name)") == ["training", "window"]
    shares = plot.evaluate("plot => plot.data.map((trace) => trace.y.reduce((a, b) => a + b))")
    assert shares == [pytest.approx(1, abs=1e-3)] * 2
    outputs = report_page.locator("#outputs tbody.test")
    assert outputs.evaluate_all("rows => rows.map((row) => row.dataset.feature)") != []
    outputs.first.get_by_role("button").click()
    expect(outputs.first.locator(".drill-plot .main-svg").first).to_be_visible()


def test_the_history_lists_every_check_and_each_opens_its_own_page(
        report_page: Page, reports: list[dict]) -> None:
    history = report_page.locator("#history tbody tr")
    expect(history).to_have_count(3)
    expect(history.first).to_have_attribute("aria-current", "page")
    expect(history.locator(".badge")).to_have_text(
        ["drifted" if report["drifted"] else "no drift" for report in reports])
    expect(history.nth(1)).to_contain_text(f"({reports[1]['features_drifted']} of 7)")
    for row, report in ((1, reports[1]), (2, reports[2])):
        history.nth(row).get_by_role("link").click()
        expect(report_page).to_have_url(
            f"{report_page.url.rsplit('/drift/', 1)[0]}/drift/reports/{report['id']}")
        expect(report_page.locator("h1")).to_have_text(f"Drift report {report['id']}")
        expect(report_page.locator("#drifted-count")).to_have_text(
            f"{report['features_drifted']} of 7")
        expect(report_page.locator("#history tr.current")).to_have_count(1)
        expect(history.nth(row)).to_have_attribute("aria-current", "page")
        expect(report_page.locator("#features .drill-plot .main-svg").first).to_be_visible()


def test_the_header_leads_back_to_the_monitoring_tab(report_page: Page) -> None:
    report_page.goto(report_page.url.replace("/drift/report", "/drift/reports/1"))
    report_page.locator("#back").click()
    expect(report_page.get_by_role("tab", name="Monitoring")).to_have_attribute(
        "aria-selected", "true")
    expect(report_page.locator("#latest-report")).to_be_visible()


def test_the_history_is_paged_and_an_unknown_report_is_a_clear_404(
        base_url: str, reports: list[dict]) -> None:
    first = httpx.get(f"{base_url}drift/reports", params={"limit": 2}).json()
    rest = httpx.get(f"{base_url}drift/reports", params={"limit": 2, "offset": 2}).json()
    assert [item["id"] for item in first["items"] + rest["items"]] == [
        item["id"] for item in reports]
    assert reports[0]["drifted"] and not reports[1]["drifted"]  # shifted; drawn at random
    assert reports[0]["features_drifted"] >= 2 and reports[0]["features_tested"] == 7
    page = httpx.get(f"{base_url}drift/reports/{reports[-1]['id']}")
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.startswith("<!doctype html>")
    missing = httpx.get(f"{base_url}drift/reports/9999")
    assert missing.status_code == 404
    assert missing.json()["detail"].startswith("no drift report 9999 of titanic")
    bad = httpx.get(f"{base_url}drift/reports/latest")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "report_id"
    assert httpx.get(f"{base_url}drift/reports", params={"limit": 0}).status_code == 422
