"""The Predict tab: one record from the form, a CSV file of them.

In a real headless Chromium (Debian's, driven by Playwright), against the real app served
by uvicorn with a trained champion.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from tests.support.ui import upload

pytestmark = pytest.mark.slow


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
    page.screenshot(path=screenshots / "predict.png", full_page=True)


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
    page.screenshot(path=screenshots / "predict-csv.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download results (CSV)").click()
    scored = pd.read_csv(download.value.path())
    assert scored["name"].tolist() == names
    assert scored["probability"].between(0, 1).all()
