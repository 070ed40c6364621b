"""The Predict tab: one record from the form, one passenger by id, a CSV file of them, and
the customers dataset's form in its own words.

In a real headless Chromium (Debian's, driven by Playwright), against the real app served
by uvicorn with a trained champion.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Browser, Page, expect

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.serving import create_app
from tests.support.browser import TIMEOUT_MS
from tests.support.live_server import live_server
from tests.support.passengers import stored_passengers
from tests.support.ui import open_tab, upload

pytestmark = pytest.mark.slow


def test_filling_the_form_shows_a_prediction_and_what_drove_it(
        page: Page, screenshots: Path) -> None:
    page.get_by_label("Name").fill("Allen, Miss. Elisabeth Walton")
    page.get_by_label("Sex").select_option("female")
    page.get_by_label("Ticket class").select_option("1")
    page.get_by_label("Fare (£)").fill("211.34")
    page.get_by_role("button", name="Predict").click()

    expect(page.locator("#verdict")).to_contain_text("Survived · ")
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
        page: Page, passengers_csv: tuple[Path, list[str]]) -> None:
    csv, names = passengers_csv
    upload(page, csv)
    rows = page.locator("#csv-table tbody tr")
    expect(rows).to_have_count(len(names))
    for row, name in zip(rows.all(), names, strict=True):
        expect(row).to_contain_text(name)
    expect(page.locator("#csv-summary")).to_contain_text(f"{len(names)} rows scored")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download results (CSV)").click()
    scored = pd.read_csv(download.value.path())
    assert scored["name"].tolist() == names
    assert scored["probability"].between(0, 1).all()


@pytest.fixture
def large_csv(titanic: DatasetSpec, tmp_path: Path) -> Path:
    """2,000 rows of the bundled passengers; row 2's age is a word, row 5's class is 7, and
    line 9 does not split into the header's columns."""
    passengers = pd.read_csv(titanic.bundled_path(), dtype=str, keep_default_na=False)
    rows = pd.concat([passengers, passengers]).iloc[:2000].reset_index(drop=True)
    rows.loc[1, "age"] = "old"
    rows.loc[4, "pclass"] = "7"
    lines = rows.to_csv(index=False).splitlines()
    lines[9] = "1,3"
    path = tmp_path / "many.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_large_upload_is_summed_up_and_shown_a_page_at_a_time(
        page: Page, large_csv: Path, screenshots: Path) -> None:
    upload(page, large_csv)
    expect(page.locator("#csv-summary")).to_have_text(
        "1,999 rows scored from many.csv · 2 with a value not used · 1 line not scored.")
    counts = page.locator("#csv-classes li strong").all_inner_texts()
    assert sum(int(n.replace(",", "")) for n in counts) == 1999
    expect(page.locator("#csv-histogram .main-svg").first).to_be_visible()
    # The bad values and the line, by the row a person finds them at in the file.
    expect(page.locator("#csv-issues tbody tr")).to_have_count(3)
    expect(page.locator("#csv-issues tbody tr").nth(0).locator("td")).to_have_text(
        ["2", "Age (years)", "“old”", "not a number"])
    expect(page.locator("#csv-issues tbody tr").nth(1).locator("td")).to_have_text(
        ["5", "Ticket class", "“7”", "not one of 1, 2, 3"])
    expect(page.locator("#csv-issues tbody tr").nth(2).locator("td")).to_contain_text(
        ["9", "(whole line)"])
    rows = page.locator("#csv-table tbody tr")
    expect(rows).to_have_count(50)
    expect(page.locator("#csv-page")).to_have_text("Rows 1–50 of 2,000")
    expect(rows.nth(8)).to_contain_text("not scored")
    expect(rows.nth(1).locator("td.issues")).to_have_text("Age (years): not a number")
    page.locator("#csv-form").evaluate("form => form.closest('.card').scrollIntoView()")
    page.screenshot(path=screenshots / "predict-csv.png")

    page.get_by_role("button", name="Next").click()
    expect(page.locator("#csv-page")).to_have_text("Rows 51–100 of 2,000")
    expect(rows.first.locator("td").first).to_have_text("51")
    expect(page.get_by_role("link", name="Download results (CSV)")).to_be_visible()


def test_a_passenger_is_scored_by_id_from_the_online_store(
        page: Page, trained_settings: Settings, titanic: DatasetSpec) -> None:
    passenger, = stored_passengers(trained_settings, titanic, 1)
    page.get_by_label("Passenger id").fill(passenger)
    page.get_by_role("button", name="Score by id").click()
    expect(page.locator("#verdict")).to_contain_text(re.compile(r"(Died|Survived) · "))
    expect(page.locator("#predict-meta")).to_contain_text(f"scored by id {passenger}")
    expect(page.locator("#contributions li").first).to_be_visible()

    page.get_by_label("Passenger id").fill("nobody-by-this-id")
    page.get_by_role("button", name="Score by id").click()
    expect(page.locator("#entity-error")).to_contain_text(
        "nobody-by-this-id: no features")


@pytest.fixture(scope="module")
def two_datasets_url(settings: Settings) -> Iterator[str]:
    """The trained titanic service serving customers too, whose champion is not trained: its
    page and form need none."""
    with live_server(create_app(settings.model_copy(update={"datasets": ["customers"]}))) as url:
        yield url


@pytest.fixture
def two_datasets_page(browser: Browser, two_datasets_url: str) -> Iterator[Page]:
    """A tab on the titanic page. Nothing may fail but the customers' missing champion."""
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("response", lambda response: (response.status == 404 or response.status >= 500)
           and not (response.status == 503 and response.url.endswith("/customers/model"))
           and errors.append(f"{response.status} {response.url}"))
    tab.goto(f"{two_datasets_url}/")
    yield tab
    context.close()
    assert errors == []


def test_the_customers_form_speaks_the_spec_s_words(
        two_datasets_page: Page, two_datasets_url: str, screenshots: Path) -> None:
    page = two_datasets_page
    page.goto(f"{two_datasets_url}/datasets/customers/")
    form = page.locator("#predict-form")
    for label in ("Average purchase ($)", "Since last purchase (days)", "Customer for (days)",
                  "Spend in the last 90 days ($)"):
        expect(form.get_by_label(label, exact=True)).to_be_visible()
    expect(form.get_by_label("Region")).to_contain_text("Central")
    labels = " ".join(form.locator("label").all_inner_texts())
    assert "avg_completed_spend" not in labels and "_" not in labels
    expect(page.locator("#explanation .hint")).to_contain_text("“Purchase over $300”")
    expect(page.get_by_label("Customer id")).to_be_visible()
    page.screenshot(path=screenshots / "customers.png", full_page=True)


def test_switching_dataset_keeps_the_tab(two_datasets_page: Page) -> None:
    page = two_datasets_page
    open_tab(page, "Past predictions")
    page.locator("#dataset").select_option(label="customers")
    expect(page).to_have_url(re.compile(r"/datasets/customers/#past$"))
    expect(page.get_by_role("tab", name="Past predictions")).to_have_attribute(
        "aria-selected", "true")
    expect(page.locator("#panel-past")).to_be_visible()
