"""The Past predictions tab: the prediction log as the UI shows it.

In a real headless Chromium (Debian's, driven by Playwright), against the real app served
by uvicorn with a trained champion.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.ui import open_tab, upload

pytestmark = pytest.mark.slow


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
    page.screenshot(path=screenshots / "past-predictions.png", full_page=True)

    page.get_by_role("button", name="Older →").click()
    expect(page.locator("#past-status")).to_contain_text("11–")
    page.get_by_label("Source").select_option("batch")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#past-status")).to_have_text("0 predictions")
