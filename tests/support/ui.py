"""The web UI in a real headless Chromium: a fresh tab on a page, and what the tests do in it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect

from tests.support.browser import TIMEOUT_MS

ADMIN_KEY = "browser-test-key"


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


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    expect(page.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true")


def upload(page: Page, csv: Path) -> None:
    page.locator("#csv-file").set_input_files(csv)
    with page.expect_response(lambda response: "/predict/csv" in response.url) as answer:
        page.get_by_role("button", name="Score the file").click()
    assert answer.value.ok, answer.value.text()


def expect_change(row: Locator, change: str, by: str, reason: str) -> None:
    expect(row.locator("td")).to_have_text([re.compile(r"\d"), change, by, reason])
