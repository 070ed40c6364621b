"""The Monitoring tab and the drift report.

In a real headless Chromium (Debian's, driven by Playwright), against the real app served
by uvicorn with a trained champion.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from tests.support.served_history import drift_and_feedback_history
from tests.support.ui import open_tab, upload

pytestmark = pytest.mark.slow


def test_monitoring_charts_predictions_quality_drift_and_live_accuracy(
        page: Page, passengers_csv: tuple[Path, list[str]], screenshots: Path,
        settings: Settings, titanic: DatasetSpec, base_url: str) -> None:
    upload(page, passengers_csv[0])
    drift_and_feedback_history(settings, titanic, base_url)
    open_tab(page, "Monitoring")
    expect(page.locator("#monitoring-empty")).to_be_hidden()
    for chart in ("over-time", "probabilities", "quality", "issues", "drift", "accuracy"):
        expect(page.locator(f"#chart-{chart} .main-svg").first).to_be_visible()
    expect(page.locator("#chart-issues")).to_contain_text("out_of_range")
    expect(page.locator("#chart-drift")).to_contain_text("drift threshold")
    expect(page.locator("#no-report")).to_be_hidden()
    expect(page.locator("#chart-accuracy .scatterlayer .point").first).to_be_visible()
    summary = httpx.get(f"{base_url}monitoring/summary").json()
    live, check = summary["live"], summary["drift"][-1]
    expect(page.locator("#live-accuracy")).to_have_text(f"{live['accuracy'] * 100:.1f}%")
    expect(page.locator("#live-roc-auc")).to_have_text(f"{live['roc_auc']:.3f}")
    expect(page.locator("#estimated-accuracy")).to_have_text(
        f"{check['estimated_accuracy'] * 100:.1f}%")
    expect(page.locator("#live-basis")).to_contain_text(
        f"v1, on its {live['samples']} latest labelled predictions")
    estimated = page.locator("#chart-accuracy").evaluate(
        "chart => chart.data.find((trace) => trace.name === 'estimated')")
    assert estimated["y"][-1] == pytest.approx(check["estimated_accuracy"])
    threshold = page.locator("#chart-drift").evaluate(
        "chart => chart.data.find((trace) => trace.name === 'drift threshold')")
    assert threshold["y"][-1] == pytest.approx(0.05 / 7)  # Bonferroni over Titanic's 7 features
    page.screenshot(path=screenshots / "monitoring.png", full_page=True)
    page.locator("#latest-report").click()
    expect(page.locator("#verdict")).to_contain_text(f"of {len(check['p_values'])} features")


def test_predictions_over_time_say_what_they_count_with_readable_ticks(
        page: Page, passengers_csv: tuple[Path, list[str]], base_url: str) -> None:
    """Every prediction so far falls in one minute's bucket: the axis still reads in whole
    minutes, not fractions of a second around the one bar."""
    upload(page, passengers_csv[0])
    open_tab(page, "Monitoring")
    summary = httpx.get(f"{base_url}monitoring/summary").json()
    assert summary["bucket"] == "1min" and len({p["bucket"] for p in
                                                summary["predictions_over_time"]}) <= 2
    total = summary["predictions"]
    assert sum(point["count"] for point in summary["predictions_over_time"]) == total
    expect(page.locator("#over-time-basis")).to_have_text(
        f"All {total:,} predictions, per minute (UTC).")
    expect(page.locator("#probabilities-basis")).to_have_text(
        f"All {total:,} predictions, in bins of 5%.")
    ticks = page.locator("#chart-over-time .xtick text")
    expect(ticks.first).to_be_visible()
    assert all(re.fullmatch(r"\d\d:\d\d", tick) for tick in ticks.all_text_contents())
    counted = page.locator("#chart-probabilities").evaluate(
        "chart => chart.data[0].y.reduce((sum, count) => sum + count, 0)")
    assert counted == total


def test_the_latest_report_link_waits_for_a_report(gated_page: Page) -> None:
    open_tab(gated_page, "Monitoring")
    expect(gated_page.locator("#no-report")).to_be_visible()
    expect(gated_page.locator("#latest-report")).to_be_hidden()
