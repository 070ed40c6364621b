"""The page as a whole: API keys, and the API docs with no network.

In a real headless Chromium (Debian's, driven by Playwright), against the real app served
by uvicorn with a trained champion.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Route, expect
from pydantic import SecretStr

from lifeboat.config import Settings
from lifeboat.serving import create_app
from tests.support.browser import TIMEOUT_MS
from tests.support.live_server import live_server
from tests.support.ui import ADMIN_KEY, open_tab, upload

pytestmark = pytest.mark.slow


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
    tab.screenshot(path=screenshots / f"{page_path}.png")
    context.close()
    assert (errors, blocked) == ([], [])
