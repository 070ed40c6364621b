"""Debian's Chromium, driven by Playwright, for the tests that use the web UI. Without
Chromium those tests fail, locally as in CI: a skip would hide them (`make test` installs it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 20_000  # the first prediction loads the model's code paths; CI machines are slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does)",
                    pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest) -> Path:
    """Where the UI tests write their screenshots: pytest's cache folder (git-ignored), so a
    test run leaves the checkout as it was; `make screenshots` points them at `docs/images/`
    (LIFEBOAT_SCREENSHOTS), renewing the pictures the docs show from the UI as it is."""
    chosen = os.environ.get("LIFEBOAT_SCREENSHOTS")
    folder = Path(chosen) if chosen else request.config.cache.mkdir("browser-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
