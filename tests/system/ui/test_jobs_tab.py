"""The Jobs tab: every run of every job.

In a real headless Chromium (Debian's, driven by Playwright), against the real app served
by uvicorn with a trained champion.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.errors import JobFailed
from lifeboat.orchestration import JobContext, run
from lifeboat.synthetic.passengers import synthetic_passengers, write_passengers
from tests.support.ui import open_tab

pytestmark = pytest.mark.slow


def test_jobs_show_each_run_its_counts_and_a_failure_s_error(
        page: Page, screenshots: Path, settings: Settings, titanic: DatasetSpec,
        tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    context = JobContext(settings.model_copy(update={"storage_url": str(landing)}),
                         Database(settings.db_url), titanic)
    (landing / "raw").mkdir(parents=True)
    write_passengers(synthetic_passengers(20, seed=31), landing / "raw" / "arrivals.csv")
    run(context, "ingest", "schedule")
    with pytest.raises(JobFailed):
        run(context, "ingest_file", "watch", source="/no/such.csv")

    open_tab(page, "Jobs")
    rows = page.locator("#jobs-table tbody tr")
    failed, ingested = rows.nth(0), rows.nth(1)
    expect(failed).to_contain_text("ingest_file")
    expect(failed).to_contain_text("watch")
    expect(failed.locator(".pill.failed")).to_have_text("failed")
    expect(failed.locator(".run-error")).to_contain_text(re.compile("no such", re.IGNORECASE))
    expect(failed.locator(".run-error")).to_have_css("color", "rgb(192, 57, 43)")
    expect(ingested.locator(".pill.up")).to_have_text("succeeded")
    expect(ingested).to_contain_text("rows_loaded 20")
    expect(ingested).to_contain_text(re.compile(r"\d\.\d s"))
    page.screenshot(path=screenshots / "jobs.png", full_page=True)

    # A run that ends while the tab is open shows up without a click.
    run(context, "score", "schedule")
    expect(rows.nth(0)).to_contain_text("score")
    context.database.dispose()

    page.get_by_label("Job", exact=True).select_option("ingest_file")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("ingest_file")


def test_runs_that_did_nothing_are_hidden_until_asked_for_and_status_filters(
        page: Page, screenshots: Path, settings: Settings, titanic: DatasetSpec,
        tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "raw").mkdir(parents=True)
    context = JobContext(settings.model_copy(update={"storage_url": str(landing)}),
                         Database(settings.db_url), titanic)
    write_passengers(synthetic_passengers(10, seed=32), landing / "raw" / "more.csv")
    worked = run(context, "ingest", "schedule")
    idle = run(context, "ingest", "schedule")  # the file is gone: it finds nothing
    with pytest.raises(JobFailed):
        run(context, "ingest_file", "watch", source="/no/such/other.csv")
    context.database.dispose()
    assert idle.counts["files"] == 0 and worked.counts["files"] == 1

    open_tab(page, "Jobs")
    rows = page.locator("#jobs-table tbody tr")
    expect(page.locator(f'tr[data-run="{worked.run_id}"]')).to_contain_text("rows_loaded 10")
    expect(page.locator(f'tr[data-run="{idle.run_id}"]')).to_have_count(0)
    expect(page.locator("#jobs-status")).to_contain_text("did nothing hidden")

    page.get_by_label("Show runs that did nothing").check()
    expect(page.locator(f'tr[data-run="{idle.run_id}"]')).to_contain_text("files 0")
    page.get_by_label("Show runs that did nothing").uncheck()
    expect(page.locator(f'tr[data-run="{idle.run_id}"]')).to_have_count(0)

    page.get_by_label("Status").select_option("failed")
    failed = page.request.get("jobs", params={"status": "failed"}).json()["items"]
    expect(rows).to_have_count(len(failed))
    expect(rows.locator(".pill.failed")).to_have_count(len(failed))
    page.get_by_label("Status").select_option("running")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("No running job runs that did something yet.")
