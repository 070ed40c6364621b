"""Debian's Chromium, driven by Playwright, for the tests that use the web UI. Without
Chromium those tests fail, locally as in CI: a skip would hide them (`make test` installs it).
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def screenshots(request: pytest.FixtureRequest) -> Path:
    """Where each tab's screenshot goes: in pytest's cache folder (git-ignored), which outlives
    the rotation of temporary folders; announced on the terminal even with output captured."""
    folder = request.config.cache.mkdir("browser-screenshots")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nbrowser screenshots: {folder}")
    return folder
