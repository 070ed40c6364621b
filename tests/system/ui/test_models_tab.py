"""The Models tab: versions, the gate's decisions, curves and the champion's history.

In a real headless Chromium (Debian's, driven by Playwright), against the real app served
by uvicorn with a trained champion.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from lifeboat.datasets import DatasetSpec
from tests.support.ui import ADMIN_KEY, expect_change, open_tab

pytestmark = pytest.mark.slow


def test_models_show_each_threshold_the_gate_s_evidence_and_a_version_at_its_threshold(
        gated_page: Page, gated_url: str, titanic: DatasetSpec, screenshots: Path) -> None:
    versions = {v["version"]: v for v in httpx.get(f"{gated_url}models").json()["versions"]}
    gate = versions["2"]["promotion"]
    open_tab(gated_page, "Models")
    challenger = gated_page.locator('#models-table tbody[data-version="2"]')
    expect(challenger.locator("td.num").first).to_have_text(f"{versions['2']['threshold']:.3f}")
    expect(challenger.locator(".gate .pill")).to_have_text("refused")
    low, high = gate["interval"]
    expect(challenger.locator(".gate summary")).to_contain_text(
        f"{gate['metric']} {gate['challenger_score']:.4f} vs v1 {gate['champion_score']:.4f}, "
        f"{gate['delta']:+.4f} [{low:+.4f}, {high:+.4f}] on {gate['heldout_rows']} held-out + "
        f"{gate['recent_rows']} labelled")
    expect(challenger.locator(".gate .reason")).to_be_hidden()
    champion = gated_page.locator('#models-table tbody[data-version="1"]')
    expect(champion).to_contain_text("★ Champion")
    expect(champion.locator(".gate")).to_contain_text("promoted first model")
    for curve in ("#chart-roc", "#chart-calibration"):  # plotly draws its traces as SVG paths
        expect(gated_page.locator(f"{curve} .scatterlayer .trace").first).to_be_visible()

    # The champion is shown at its threshold first; opening v2's decision picks v2.
    expect(gated_page.get_by_label("Version", exact=True)).to_have_value("1")
    expect(gated_page.locator("#confusion caption")).to_have_text("v1 at threshold 0.500")
    challenger.locator(".gate summary").click()
    expect(challenger.locator(".gate .reason")).to_have_text(gate["reason"])
    expect(gated_page.get_by_label("Version", exact=True)).to_have_value("2")
    expect(gated_page.locator("#confusion caption")).to_have_text(
        f"v2 at threshold {versions['2']['threshold']:.3f}")
    at = httpx.get(f"{gated_url}models/2/curves").json()["threshold"]
    matrix = gated_page.locator("#confusion")
    expect(matrix.locator("td.num")).to_have_text([str(n) for row in at["confusion"] for n in row])
    died, survived = titanic.target.labels[0], titanic.target.labels[1]
    expect(matrix.locator("thead th")).to_have_text([f"predicted {died}", f"predicted {survived}"])
    expect(matrix.locator("tbody th")).to_have_text([f"actually {died}", f"actually {survived}"])

    expect(gated_page.locator("#chart-pr .scatterlayer .trace")).to_have_count(2)
    expect(gated_page.locator("#chart-pr")).to_contain_text(f"threshold {at['value']:.3f}")
    marked = gated_page.locator("#chart-pr").evaluate("chart => chart.data[1]")
    assert (marked["x"], marked["y"]) == ([at["recall"]], [at["precision"]])
    gated_page.screenshot(path=screenshots / "models.png", full_page=True)


def test_the_champion_history_lists_each_change_and_a_rollback_needs_the_key(
        gated_page: Page, gated_url: str, screenshots: Path) -> None:
    open_tab(gated_page, "Models")
    changes = gated_page.locator("#history-table tbody tr")
    expect(changes).to_have_count(1)
    expect_change(changes.first, "none → v1", "training", "first model")

    roll_back = gated_page.get_by_role("button", name="Roll back")
    refused = gated_page.locator("#rollback-error")
    roll_back.click()
    expect(refused).to_have_text("Not rolled back: enter the admin API key first.")
    gated_page.get_by_label("API key").fill("wrong")
    roll_back.click()
    expect(refused).to_have_text("Not rolled back: wrong API key.")
    gated_page.get_by_label("API key").fill(ADMIN_KEY)
    roll_back.click()  # v1 replaced no champion: the server's 409 says so
    expect(refused).to_contain_text("nothing to roll back to")

    gated_page.get_by_role("button", name="Promote v2").click()
    expect(gated_page.locator("#champion")).to_contain_text("Champion: lifeboat-titanic v2")
    expect_change(changes.first, "v1 → v2", "api", "promoted by an admin")
    roll_back.click()
    expect(gated_page.locator("#champion")).to_contain_text("Champion: lifeboat-titanic v1")
    expect(gated_page.locator("#history-status")).to_have_text("Rolled back to v1.")
    expect(refused).to_be_empty()
    expect(changes).to_have_count(3)
    expect_change(changes.first, "v2 → v1", "api", "rollback from v2")
    champion = gated_page.locator('#models-table tbody[data-version="1"]')
    expect(champion).to_contain_text("★ Champion")
    assert httpx.get(f"{gated_url}models").json()["champion"] == "1"
    gated_page.screenshot(path=screenshots / "models-history.png", full_page=True)
