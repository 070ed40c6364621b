"""The Past predictions tab: the prediction log as the UI shows it, each prediction's true
outcome, one prediction in detail (by a click or by its URL), feedback and the CSV export.

In a real headless Chromium (Debian's, driven by Playwright), against the real app served
by uvicorn with a trained champion.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.ui import open_tab, upload

pytestmark = pytest.mark.slow


def _logged(page: Page, **params: str) -> list[dict]:
    response = page.request.get("past-predictions", params={"limit": 1000, **params})
    assert response.ok, response.text()
    return response.json()["items"]


def _show_webapp_rows(page: Page, per_page: str) -> None:
    open_tab(page, "Past predictions")
    page.get_by_label("Source").select_option("webapp")
    page.get_by_label("Per page").select_option(per_page)
    page.get_by_role("button", name="Apply").click()


def test_uploaded_rows_appear_under_past_predictions_with_their_outcome(
        page: Page, passengers_csv: tuple[Path, list[str]], screenshots: Path) -> None:
    csv_path, names = passengers_csv
    for _ in range(2):  # more rows than one page holds
        upload(page, csv_path)
    newest = _logged(page, source="webapp")[0]
    wrong = 1 - newest["prediction"]
    given = page.request.post("feedback", data={"id": newest["id"], "actual": wrong})
    assert given.ok, given.text()

    _show_webapp_rows(page, "10")
    table = page.locator("#past-table tbody")
    expect(page.locator("#past-status")).to_contain_text("1–10 of")
    for name in names:
        expect(table).to_contain_text(name)
    headers = page.locator("#past-table thead th")
    expect(headers).to_contain_text(["True outcome"])
    outcome = table.locator(f'tr[data-id="{newest["id"]}"] td.outcome')
    expect(outcome).to_contain_text("✗")  # the feedback says the prediction was wrong
    expect(outcome).to_contain_text("Died" if wrong == 0 else "Survived")  # as the spec names them
    expect(outcome).to_contain_text("feedback")
    expect(table.locator("td.outcome.unknown")).to_have_count(9)
    page.screenshot(path=screenshots / "past-predictions.png", full_page=True)

    page.get_by_role("button", name="Older →").click()
    expect(page.locator("#past-status")).to_contain_text("11–")
    page.get_by_label("Source").select_option("batch")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#past-status")).to_have_text("0 predictions")


def test_a_row_opens_its_detail_where_its_outcome_can_be_entered(
        page: Page, passengers_csv: tuple[Path, list[str]], screenshots: Path) -> None:
    csv_path, _ = passengers_csv
    upload(page, csv_path)
    chosen = _logged(page, source="webapp")[2]
    _show_webapp_rows(page, "25")
    page.locator(f'#past-table tr[data-id="{chosen["id"]}"]').click()

    detail = page.locator("#past-detail")
    expect(detail).to_be_visible()
    expect(page).to_have_url(f"{page.url.split('#')[0]}#past/{chosen['id']}")
    expect(detail.locator("h2")).to_contain_text(chosen["id"])
    expect(page.locator("#past-input")).to_contain_text(chosen["input"]["name"])
    expect(page.locator("#past-features")).to_contain_text("title")
    expect(page.locator("#past-facts")).to_contain_text(
        f"{chosen['model_name']} v{chosen['model_version']}")
    expect(page.locator("#past-facts")).to_contain_text("not known yet")
    expect(page.locator("#past-explained")).to_contain_text("Computed now by")
    expect(page.locator("#past-contributions li").first).to_be_visible()

    actual = 1 - chosen["prediction"]
    page.get_by_label("True outcome").select_option(str(actual))
    with page.expect_response(lambda response: response.url.endswith("/feedback")) as answer:
        page.get_by_role("button", name="Save outcome").click()
    assert answer.value.ok, answer.value.text()
    expect(page.locator("#past-feedback-status")).to_contain_text("the prediction was wrong")
    stored = page.request.get(f"past-predictions/{chosen['id']}").json()
    assert (stored["actual"], stored["outcome_source"]) == (actual, "api")
    expect(page.locator("#past-facts")).to_contain_text("(feedback)")
    expect(page.locator(f'#past-table tr[data-id="{chosen["id"]}"] td.outcome')).to_contain_text("✗")
    page.screenshot(path=screenshots / "prediction-detail.png", full_page=True)

    page.reload()  # the URL alone opens the same prediction
    expect(page.get_by_role("tab", name="Past predictions")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#past-input")).to_contain_text(chosen["input"]["name"])
    page.get_by_role("button", name="Close").click()
    expect(detail).to_be_hidden()
    assert page.url.endswith("#past")


def test_the_export_downloads_the_filtered_predictions(
        page: Page, passengers_csv: tuple[Path, list[str]], tmp_path: Path) -> None:
    csv_path, names = passengers_csv
    upload(page, csv_path)
    wanted = _logged(page, source="webapp")
    _show_webapp_rows(page, "10")
    expect(page.locator("#past-export")).to_have_attribute("href", "past-predictions.csv?source=webapp")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    saved = tmp_path / "export.csv"
    download.value.save_as(saved)
    with saved.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["id"] for row in rows] == [item["id"] for item in wanted]
    assert {row["source"] for row in rows} == {"webapp"}
    assert set(names) <= {row["name"] for row in rows}
    assert {"prediction", "probability", "actual", "model_version", "latency_ms"} <= set(rows[0])
