"""Debian's Chromium, driven by Playwright, for the tests that use the web UI. Without
Chromium those tests fail, locally as in CI: a skip would hide them (`make test` installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.paths import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "docs" / "images"
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
def screenshots() -> Path:
    """Where the UI tests write their screenshots: `docs/images/`, the pictures the docs
    show, so every run of the suite renews them from the UI as it is."""
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS
